"""tools/benchmark_teacher_cost.py at a tiny size: every part runs and writes its JSON."""
import importlib.util
import json
import os.path as osp

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def _tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_teacher_cost', osp.join(ROOT, 'tools', 'benchmark_teacher_cost.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cost_tool_measures_methods_and_the_teacher_at_a_tiny_size(tmp_path):
    out = str(tmp_path / 'cost.json')
    report = _tool().main([
        '--config', 'configs/demo/segformer-mit-b0_source.py', '--size', '128x256',
        '--input', '64x128', '--crop', '48', '--stride', '32', '--images', '1', '--warmup', '0',
        '--methods', 'svdp', '--views-per-forward', '1', '3', '--budget-gb', '24',
        '--out', out])
    with open(out) as f:
        saved = json.load(f)
    assert saved == json.loads(json.dumps(report))
    assert saved['methods']['svdp']['seconds_per_image'] > 0
    assert saved['methods']['svdp']['peak_mb'] > 0
    loop, batched = saved['teacher']['1'], saved['teacher']['3']
    assert loop['max_abs_diff_from_first'] == 0 and batched['same_labels_as_first']
    assert batched['max_abs_diff_from_first'] < 1e-5
    assert saved['views_per_forward_ceiling'] == 3


def test_the_cost_tool_measures_hybrid_tta_on_an_input_stretched_to_multiples_of_32(tmp_path):
    # 60x120 becomes 64x128; the slide crop covers it, as 1024 covers ACDC's 544x960
    report = _tool().main([
        '--config', 'configs/demo/segformer-mit-b0_source.py', '--size', '128x256',
        '--input', '60x120', '--crop', '160', '--stride', '120', '--images', '1',
        '--warmup', '0', '--methods', 'hybrid-tta', '--views-per-forward', '1',
        '--out', str(tmp_path / 'cost.json')])
    assert report['methods']['hybrid-tta']['seconds_per_image'] > 0
    assert report['methods']['hybrid-tta']['peak_mb'] > 0


def test_the_cost_tool_rejects_bad_sizes():
    with pytest.raises(SystemExit):
        _tool().parse_args(['--size', '1080by1920'])


def test_a_measurement_killed_for_memory_is_a_row_and_the_others_go_on(tmp_path, monkeypatch):
    tool = _tool()
    real_run = tool.subprocess.run

    def run(argv, **kwargs):  # the kernel's out-of-memory killer ends the 3-per-forward worker
        if '--worker' in argv and argv[argv.index('--worker') + 1:][:2] == ['views', '3']:
            return tool.subprocess.CompletedProcess(argv, -9, '', '')
        return real_run(argv, **kwargs)

    monkeypatch.setattr(tool.subprocess, 'run', run)
    out = tmp_path / 'cost.json'
    report = tool.main([
        '--config', 'configs/demo/segformer-mit-b0_source.py', '--size', '128x256',
        '--input', '64x128', '--crop', '48', '--stride', '32', '--images', '1', '--warmup', '0',
        '--methods', '--views-per-forward', '1', '3', '2', '--out', str(out)])
    killed = 'killed (signal 9; on the CPU usually out of memory)'
    assert report['teacher']['3'] == {'error': killed}
    assert report['teacher']['2']['same_labels_as_first']  # measured after the failed one
    assert report['views_per_forward_ceiling'] == 2
    table = (tmp_path / 'cost.md').read_text()
    assert table == tool.teacher_cost_markdown(json.loads(out.read_text())) + '\n'
    assert f'| 3 | {killed} |' in table
