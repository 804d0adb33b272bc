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

PACKAGE = osp.join(ROOT, 'stag_seg')
#: Lowest first; a module may import its own layer and the layers before it.
LAYERS = [
    {'version', 'registry', 'compat', 'dist'},
    {'structures'},
    {'stag'},
    {'methods'},
    {'models'},
    {'datasets'},
    {'evaluation'},
    {'engine'},
    {'selfcheck'},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: str) -> str:
    """The layer unit of a file: its subpackage, or its module name for a top-level module."""
    return osp.relpath(path, PACKAGE).split(os.sep)[0].removesuffix('.py')


def _imported_units(path: str) -> list[tuple[int, str]]:
    """``(line, unit)`` of every import of the package in ``path``."""
    tree = ast.parse(open(path).read(), path)
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
