"""Results have one home: every table under results/ is what its generator writes from the
committed JSON beside it, the docs include those tables rather than retype them, and the README's
table is a copy of one, kept equal."""
import glob
import importlib.util
import json
import os.path as osp
import re

import pytest
from conftest import ROOT

from stag_seg.evaluation import write_comparison
from stag_seg.suites import load_suite, rounds_markdown, settings_markdown

RESULTS = osp.join(ROOT, 'results')


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _suite_table(doc):
    return settings_markdown(doc) if 'results' in doc else rounds_markdown(doc)


def _project_tool(path, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated() -> list[tuple[str, str, object]]:
    """``(json, md, render)`` for every table the tools write from a committed document."""
    calibration, overhead = _tool('calibrate_severity'), _tool('benchmark_overhead')
    scaling, soak, sweep = _tool('benchmark_scaling'), _tool('soak'), _tool('sweep_zoo')
    teacher = _tool('benchmark_teacher_cost')
    faults = _tool('fault_check')
    signal = _project_tool('projects/stag_study/tools/analyze_signal.py', 'analyze_signal')
    pairs = [(path, osp.join(osp.dirname(path), 'table.md'), _suite_table)
             for path in glob.glob(osp.join(RESULTS, 'suites', '**', 'table.json'),
                                   recursive=True)]
    pairs += [
        ('calibration/severity.json', 'calibration/severity.md',
         calibration.calibration_markdown),
        ('calibration/cotta_lr.json', 'calibration/cotta_lr.md', calibration.lr_choice_markdown),
        ('cost/overhead_cpu.json', 'cost/overhead_cpu.md', overhead.overhead_markdown),
        ('cost/scaling_cpu.json', 'cost/scaling_cpu.md', scaling.scaling_markdown),
        ('cost/teacher_cost_cpu.json', 'cost/teacher_cost_cpu.md',
         teacher.teacher_cost_markdown),
        ('soak/soak.json', 'soak/soak.md', soak.soak_markdown),
        ('faults/faults.json', 'faults/faults.md', faults.faults_markdown),
        ('model_zoo/supported_models.json', osp.join(ROOT, 'docs', 'en', 'supported_models.md'),
         sweep.table),
        (osp.join(ROOT, 'projects/stag_study/results/signal_auroc.json'),
         osp.join(ROOT, 'projects/stag_study/results/signal_auroc.md'), signal.signal_markdown),
    ]
    return [(osp.join(RESULTS, j), osp.join(RESULTS, m), render) for j, m, render in pairs]


def _comparisons() -> list[str]:
    """Documents whose runs make a comparison.{md,csv} beside them."""
    found = []
    for path in glob.glob(osp.join(RESULTS, '**', '*.json'), recursive=True):
        with open(path) as f:
            if 'runs' in json.load(f) and osp.isfile(osp.join(osp.dirname(path),
                                                              'comparison.md')):
                found.append(path)
    return sorted(found)


@pytest.mark.parametrize('source, table, render', _generated(),
                         ids=lambda v: osp.relpath(v, ROOT) if isinstance(v, str) else '')
def test_every_table_is_what_its_generator_writes_from_the_committed_results(source, table,
                                                                            render):
    with open(source) as f:
        document = json.load(f)
    text = render(document)
    with open(table) as f:
        committed = f.read()
    assert committed.rstrip('\n') == text.rstrip('\n'), f'{table} differs from its generator'


@pytest.mark.parametrize('source', _comparisons(), ids=lambda p: osp.relpath(p, ROOT))
def test_every_comparison_is_what_its_runs_make(source, tmp_path):
    with open(source) as f:
        document = json.load(f)
    write_comparison(document, str(tmp_path))
    for name in ('comparison.md', 'comparison.csv'):
        with open(osp.join(osp.dirname(source), name), newline='') as f:
            committed = f.read()
        with open(tmp_path / name, newline='') as f:
            assert f.read() == committed, name


def _rounds_tables() -> list[str]:
    """The committed tables of the rounds suites (their JSON keeps the runs)."""
    found = []
    for path in glob.glob(osp.join(RESULTS, 'suites', '*', 'table.json')):
        with open(path) as f:
            if 'runs' in json.load(f):
                found.append(path)
    return sorted(found)


@pytest.mark.parametrize('source', _rounds_tables(), ids=lambda p: osp.relpath(p, ROOT))
def test_every_rounds_table_names_the_suite_and_options_that_made_it(source):
    """What ``run_suite --from-table`` trusts: results/suites/<name>/ is the suite
    configs/suites/<name>.py's, made with its own options (the calibrated suite runs the demo's
    configs on other data, so the options tell the two apart)."""
    with open(source) as f:
        document = json.load(f)
    name = osp.basename(osp.dirname(source))
    assert document['suite'] == f'configs/suites/{name}.py'
    suite = load_suite(osp.join(ROOT, document['suite']))
    assert document['cfg_options'] == json.loads(json.dumps(dict(suite.cfg_options)))
    assert {run['rounds'] for run in document['runs']} == {document['rounds']}


def test_every_table_under_results_has_a_generator():
    covered = {table for _, table, _ in _generated()} | {
        osp.join(osp.dirname(p), 'comparison.md') for p in _comparisons()}
    tables = set(glob.glob(osp.join(RESULTS, '**', '*.md'), recursive=True))
    assert not tables - covered, f'tables without a generator: {sorted(tables - covered)}'


def test_the_docs_include_results_that_exist():
    missing = []
    for page in glob.glob(osp.join(ROOT, 'docs', 'en', '**', '*.md'), recursive=True):
        with open(page) as f:
            for target in re.findall(r'```\{include\}\s+(\S+)', f.read()):
                if not osp.isfile(osp.normpath(osp.join(osp.dirname(page), target))):
                    missing.append(f'{osp.relpath(page, ROOT)} -> {target}')
    assert not missing, missing


def test_the_readme_tables_are_copies_of_the_results_they_name():
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    blocks = re.findall(r'<!-- copy of (\S+) -->(.*?)<!-- end of copy -->', readme, re.S)
    assert blocks, 'the README shows no results table'
    for path, block in blocks:
        with open(osp.join(ROOT, path)) as f:
            assert block.strip() == f.read().strip(), f'README differs from {path}'
