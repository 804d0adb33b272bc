"""tools/test_tta.py on a tiny generated Cityscapes->ACDC-like tree, as a user runs it."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import build_segmentor, tiny_segmentor_cfg

from stag_seg.evaluation import load_results, validate_results

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CITYSCAPES_CLASSES = 19


@pytest.fixture(scope='module')
def tiny_run(tiny_tree, tmp_path_factory):
    """A config file and a checkpoint for a tiny 19-class segmentor."""
    tmp = tmp_path_factory.mktemp('run')
    model = build_segmentor(num_classes=CITYSCAPES_CLASSES)
    ckpt = str(tmp / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(note='test')), ckpt)
    model_cfg = tiny_segmentor_cfg(num_classes=CITYSCAPES_CLASSES)
    model_cfg.pop('adapt_optim_wrapper')
    base = osp.join(ROOT, 'configs', '_base_')
    config = tmp / 'tiny_tent_stag.py'
    config.write_text(
        f"_base_ = [{osp.join(base, 'datasets', 'synthetic_acdc.py')!r}, "
        f"{osp.join(base, 'default_runtime.py')!r}]\n"
        f'model = {model_cfg!r}\n'
        "model['tta_method'] = dict(type='Tent', regularizers=[dict(type='STAG')])\n"
        "model['adapt_optim_wrapper'] = dict(optimizer=dict(type='Adam', lr=1e-3))\n"
        f'test_dataloader = dict(num_workers=0, dataset=dict(data_root={tiny_tree!r}))\n'
        'test_cfg = dict(rounds=2)\n')
    return str(config), ckpt


def _test_tta(*args, cwd=ROOT):
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test_tta.py'), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_test_tta_writes_results_matching_the_schema(tiny_run, tmp_path):
    config, ckpt = tiny_run
    work_dir = str(tmp_path / 'work')
    proc = _test_tta(config, ckpt, '--work-dir', work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = load_results(osp.join(work_dir, 'tta_results.json'))
    validate_results(doc)
    assert doc['method'] == 'Tent' and doc['regularizers'] == ['STAG']
    assert doc['metric'] == 'mIoU' and doc['rounds'] == 2
    assert doc['domains'] == ['fog', 'night', 'rain', 'snow']
    assert [(r['round'], r['domain']) for r in doc['records']] == [
        (r, d) for r in (1, 2) for d in ('fog', 'night', 'rain', 'snow')]
    assert all(r['num_samples'] == 3 for r in doc['records'])
    # the method's and STAG's statistics, averaged per (round, domain)
    assert all(0 <= r['adapt/stag_used'] <= 1 and -1 <= r['adapt/stag_cos'] <= 1
               and r['adapt/loss'] > 0 for r in doc['records'])
    assert doc['checkpoint'] == ckpt and doc['config'] == config and doc['seed'] == 0
    assert {'torch', 'mmseg', 'mmengine', 'stag_seg'} <= set(doc['versions'])
    assert doc['images_per_s'] > 0
    for ext in ('csv', 'md', 'png'):
        assert osp.getsize(osp.join(work_dir, f'tta_results.{ext}')) > 0
    with open(osp.join(work_dir, 'tta_results.csv')) as f:
        assert len(f.read().strip().splitlines()) == 1 + 8


def test_cfg_options_and_episodic_mode_reach_the_loop(tiny_run, tmp_path):
    config, ckpt = tiny_run
    work_dir = str(tmp_path / 'work')
    proc = _test_tta(config, ckpt, '--work-dir', work_dir, '--cfg-options', 'test_cfg.rounds=1',
                     'test_cfg.episodic=True', "model.tta_method.regularizers=[]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(osp.join(work_dir, 'tta_results.json')) as f:
        doc = json.load(f)
    assert doc['rounds'] == 1 and len(doc['records']) == 4
    assert doc['regularizers'] == [] and doc['episodic'] is True
    # the merged config, overrides included, is kept beside the results
    with open(doc['config_dump']) as f:
        dumped = f.read()
    assert 'episodic=True' in dumped and 'regularizers=[]' in dumped


def test_a_checkpoint_for_another_number_of_classes_is_a_clear_error(tiny_run, tmp_path):
    config, _ = tiny_run
    other = build_segmentor(num_classes=7)
    ckpt = str(tmp_path / 'seven.pth')
    torch.save(dict(state_dict=other.state_dict()), ckpt)
    proc = _test_tta(config, ckpt, '--work-dir', str(tmp_path / 'work'))
    assert proc.returncode != 0
    assert "decode_head.conv_seg.weight has 7 classes, the model's classifier 19" in proc.stderr


def test_editing_a_config_template_key_is_refused_with_the_model_key(tiny_run, tmp_path):
    config, ckpt = tiny_run
    proc = _test_tta(config, ckpt, '--cfg-options', 'tta_method.loss=pseudo_label')
    assert proc.returncode != 0 and 'set model.tta_method... instead' in proc.stderr


def test_a_missing_checkpoint_is_named(tiny_run, tmp_path):
    config, _ = tiny_run
    missing = str(tmp_path / 'nope.pth')
    proc = _test_tta(config, missing, '--work-dir', str(tmp_path / 'work'))
    assert proc.returncode != 0 and f'checkpoint not found: {missing}' in proc.stderr


def test_a_pickle_that_would_run_code_is_refused(tiny_run, tmp_path):
    config, _ = tiny_run
    marker = tmp_path / 'payload-ran'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    ckpt = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=Payload()), ckpt)
    proc = _test_tta(config, ckpt, '--work-dir', str(tmp_path / 'work'))
    assert proc.returncode != 0
    assert not marker.exists()
    assert 'Weights only load failed' in proc.stderr or 'refused' in proc.stderr


def test_the_stock_test_loop_adapts_a_tta_segmentor_too(tiny_run, tmp_path):
    """A plain MMSeg test flow (Runner.from_cfg(cfg).test() with MMEngine's TestLoop)."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    config, ckpt = tiny_run
    cfg = Config.fromfile(config)
    cfg.test_cfg = dict(type='TestLoop')
    cfg.test_dataloader.dataset.condition = 'fog'
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = ckpt
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 'mIoU' in metrics
    source = torch.load(ckpt, weights_only=True)['state_dict']
    adapted = runner.model.state_dict()
    changed = {k for k in source if not torch.equal(source[k], adapted[k])}
    from stag_seg.methods import collect_norm_params
    assert changed and changed <= set(collect_norm_params(runner.model)[1])


@pytest.mark.parametrize('test_cfg, match', [
    (dict(rounds=0), 'test_cfg.rounds must be an int >= 1, got 0'),
    (dict(domains=[]), 'needs at least one domain'),
    (dict(domains=['fog', 'fog']), "repeated names: \\['fog', 'fog'\\]"),
    (dict(domains=['fog', 'haze']), "unknown ACDC condition 'haze'"),
])
def test_bad_loop_settings_are_clear_errors(tiny_run, tmp_path, test_cfg, match):
    from mmengine.config import Config
    from mmengine.runner import Runner
    config, ckpt = tiny_run
    cfg = Config.fromfile(config)
    cfg.test_cfg.update(test_cfg)
    cfg.work_dir, cfg.load_from = str(tmp_path), ckpt
    cfg.experiment_name = f'bad_loop_{abs(hash(match))}'
    with pytest.raises((ValueError, TypeError), match=match):
        Runner.from_cfg(cfg).test()
