"""The package's layers point one way: each subpackage imports only the layers below it.

The order is the one docs/design.md draws. Every import statement counts, at module level,
inside functions and under ``TYPE_CHECKING`` alike, so a type hint cannot run upward either.
"""
import ast
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import ROOT

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

PACKAGE = osp.join(ROOT, 'stag_seg')
#: Lowest first; a module may import its own layer and the layers before it.
LAYERS = [
    {'version', 'registry', 'compat', 'dist', 'dotted'},
    {'structures'},
    {'stag'},
    {'methods'},
    {'models'},
    {'datasets'},
    {'evaluation'},
    {'engine'},
    {'selfcheck', 'suites'},
]
#: What ``import stag_seg`` loads of the package: what a config can name, and no more (the
#: generators, the suite runner and the self-check are imported only by whoever uses them).
IMPORTED = {
    'stag_seg', 'stag_seg.version', 'stag_seg.registry', 'stag_seg.dist', 'stag_seg.dotted',
    'stag_seg.structures',
    'stag_seg.compat', 'stag_seg.compat.checkpoints', 'stag_seg.compat.distributed',
    'stag_seg.compat.mmcv_ops', 'stag_seg.compat.packages', 'stag_seg.compat.syncbn',
    'stag_seg.stag', 'stag_seg.stag.anchors', 'stag_seg.stag.entropy', 'stag_seg.stag.loss',
    'stag_seg.stag.stag',
    'stag_seg.methods', 'stag_seg.methods.augment', 'stag_seg.methods.base',
    'stag_seg.methods.cotta', 'stag_seg.methods.dat', 'stag_seg.methods.deyo',
    'stag_seg.methods.eata', 'stag_seg.methods.hybrid_tta', 'stag_seg.methods.losses',
    'stag_seg.methods.memory',
    'stag_seg.methods.norm', 'stag_seg.methods.params', 'stag_seg.methods.rdumb',
    'stag_seg.methods.rmt', 'stag_seg.methods.robust_bn', 'stag_seg.methods.roid',
    'stag_seg.methods.rotta', 'stag_seg.methods.sar', 'stag_seg.methods.source',
    'stag_seg.methods.source_data', 'stag_seg.methods.step', 'stag_seg.methods.svdp',
    'stag_seg.methods.teachers', 'stag_seg.methods.tent', 'stag_seg.methods.views',
    'stag_seg.models', 'stag_seg.models.adapter', 'stag_seg.models.cifar_nets',
    'stag_seg.models.hybrid_mit',
    'stag_seg.models.nv_mit',
    'stag_seg.models.nv_segformer_head', 'stag_seg.models.prompt',
    'stag_seg.models.small_convnet', 'stag_seg.models.tap',
    'stag_seg.models.tta_encoder_decoder', 'stag_seg.models.tta_image_classifier',
    'stag_seg.models.tta_mixin',
    'stag_seg.datasets', 'stag_seg.datasets.acdc', 'stag_seg.datasets.domain_names',
    'stag_seg.datasets.domains', 'stag_seg.datasets.imagenet_c', 'stag_seg.datasets.streams',
    'stag_seg.datasets.transforms',
    'stag_seg.evaluation', 'stag_seg.evaluation.progress', 'stag_seg.evaluation.results_files',
    'stag_seg.evaluation.stream_results', 'stag_seg.evaluation.tables',
    'stag_seg.evaluation.visualize',
    'stag_seg.engine', 'stag_seg.engine.configuration', 'stag_seg.engine.continual_loop',
    'stag_seg.engine.guards', 'stag_seg.engine.lr_scaling', 'stag_seg.engine.preemption',
    'stag_seg.engine.resume', 'stag_seg.engine.show_hook', 'stag_seg.engine.state_files',
    'stag_seg.engine.stats_hook', 'stag_seg.engine.tta_hook',
}
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: str) -> str:
    """The layer unit of a file: its subpackage, or its module name for a top-level module."""
    return osp.relpath(path, PACKAGE).split(os.sep)[0].removesuffix('.py')


def _imported_units(path: str) -> list[tuple[int, str]]:
    """``(line, unit)`` of every import of the package in ``path``."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    parts = osp.relpath(path, ROOT).removesuffix('.py').split(os.sep)
    here = parts[:-1] if not parts[-1] == '__init__' else parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = here[:len(here) - node.level + 1]
                target = base + (node.module.split('.') if node.module else [])
                names = [target + [a.name] for a in node.names] if len(target) == 1 else [target]
            elif node.module and node.module.split('.')[0] == 'stag_seg':
                target = node.module.split('.')
                names = [target + [a.name] for a in node.names] if len(target) == 1 else [target]
            else:
                continue
            for name in names:
                if len(name) > 1:
                    found.append((node.lineno, name[1]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.split('.')
                if name[0] == 'stag_seg' and len(name) > 1:
                    found.append((node.lineno, name[1]))
    return found


def _sources() -> list[str]:
    return sorted(osp.join(d, f) for d, _, files in os.walk(PACKAGE) for f in files
                  if f.endswith('.py'))


def test_every_module_of_the_package_belongs_to_a_declared_layer():
    units = {_unit(p) for p in _sources()} - {'__init__'}
    assert units == set(RANK), f'undeclared: {units - set(RANK)}, gone: {set(RANK) - units}'


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in _sources():
        unit = _unit(path)
        if unit == '__init__':  # the package root imports every layer to register it
            continue
        for line, target in _imported_units(path):
            if target in RANK and RANK[target] > RANK[unit]:
                upward.append(f'{osp.relpath(path, ROOT)}:{line} ({unit}) imports {target}')
    assert not upward, 'imports that run upward:\n' + '\n'.join(upward)


def test_the_checker_sees_relative_absolute_and_type_checking_imports(tmp_path):
    # the checker itself must be able to fail: a fake module of the methods layer that reaches
    # into the engine three ways
    fake = osp.join(PACKAGE, 'methods', '_layer_probe.py')
    with open(fake, 'w') as f:
        f.write('from typing import TYPE_CHECKING\nfrom ..engine import guards\n'
                'import stag_seg.models.adapter\nif TYPE_CHECKING:\n'
                '    from stag_seg.evaluation import progress\n')
    try:
        targets = [t for _, t in _imported_units(fake)]
    finally:
        os.remove(fake)
    assert targets == ['engine', 'models', 'evaluation']


@pytest.mark.parametrize('order', [['engine', 'evaluation', 'datasets', 'models', 'methods',
                                    'stag'],
                                   ['stag', 'methods', 'models', 'datasets', 'evaluation',
                                    'engine']])
def test_each_layer_imports_alone_in_a_fresh_interpreter_in_any_order(order):
    # the package root imports every layer on the way; the point is that no subpackage needs
    # another to have been imported first (a cycle would fail here, whatever the order)
    code = ('import importlib, sys\n'
            f'for name in {order!r}:\n'
            '    importlib.import_module(f"stag_seg.{name}")\n'
            'print("ok")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith('ok')


def test_importing_the_package_loads_what_a_config_needs_and_no_more():
    code = ('import sys\nimport stag_seg\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] == "stag_seg"))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(eval(proc.stdout.strip().splitlines()[-1]))
    assert loaded == IMPORTED, (f'loaded but not listed: {sorted(loaded - IMPORTED)}; '
                                f'listed but not loaded: {sorted(IMPORTED - loaded)}')


def test_importing_the_package_changes_no_warning_filter_and_no_private_mmengine_name():
    # the upstream stack first (with the mmcv.ops stand-in, loaded from its file so that the
    # package itself is not imported yet): its own imports set filters of their own
    stand_in = osp.join(PACKAGE, 'compat', 'mmcv_ops.py')
    code = ('import importlib.util, warnings\n'
            f'spec = importlib.util.spec_from_file_location("probe", {stand_in!r})\n'
            'probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe)\n'
            'probe.install_mmcv_ops_fallback()\n'
            'import mmseg.models, mmseg.datasets, mmpretrain.models, mmpretrain.datasets\n'
            'import mmengine.runner, mmengine.dist.utils as du, mmengine.runner.checkpoint as ck\n'
            'import matplotlib, tqdm\n'
            'filters, init = list(warnings.filters), du._init_dist_pytorch\n'
            'load = getattr(ck, "_safe_torch_load", None)\n'
            'import stag_seg\n'
            'print([f for f in warnings.filters if f not in filters], '
            'du._init_dist_pytorch is init, getattr(ck, "_safe_torch_load", None) is load)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ['[]', 'True', 'True']
