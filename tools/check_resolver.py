"""Ask pip's resolver what installing the wheel into an existing OpenMMLab environment would do.

    python tools/check_resolver.py dist/stag_seg-*.whl [--keep DIR]

A fresh virtual environment is given the installed-package metadata of a typical user's
environment (torch 2.1.2 with torchvision 0.16.2, a compiled mmcv 2.1.0, mmengine 0.10.3,
mmsegmentation 1.2.2, mmpretrain 1.2.0: ``*.dist-info`` folders, which is all the resolver reads
of an installed package; their code is not needed and not installed, so nothing of several GB is
downloaded). Then ``pip install --dry-run --report`` of the wheel runs there. The check fails
when pip would install, upgrade or replace any of those packages, or add ``mmcv-lite`` beside
the compiled mmcv (both provide the ``mmcv`` package). It prints what pip would install.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import venv

#: The existing environment: (distribution name, version, what it requires).
ENVIRONMENT = (
    ('torch', '2.1.2', ('filelock', 'typing-extensions', 'sympy', 'networkx', 'jinja2',
                        'fsspec')),
    ('torchvision', '0.16.2', ('numpy', 'requests', 'torch==2.1.2', 'pillow>=5.3.0,!=8.3.*')),
    ('mmcv', '2.1.0', ('addict', 'mmengine>=0.3.0', 'numpy', 'packaging', 'Pillow', 'pyyaml',
                       'yapf', 'opencv-python>=3')),
    ('mmengine', '0.10.3', ('addict', 'matplotlib', 'numpy', 'pyyaml', 'rich', 'termcolor',
                            'yapf', 'opencv-python>=3')),
    ('mmsegmentation', '1.2.2', ('matplotlib', 'numpy', 'packaging', 'prettytable', 'scipy')),
    ('mmpretrain', '1.2.0', ('einops', 'importlib-metadata', 'mat4py', 'matplotlib',
                             'modelindex', 'numpy', 'rich')),
)
#: What must not be touched, and what must not be added beside a compiled mmcv.
PROTECTED = {name for name, _, _ in ENVIRONMENT} | {'mmcv-lite', 'mmcv-full'}


def _site_packages(env_dir: str) -> str:
    out = subprocess.run([osp.join(env_dir, 'bin', 'python'), '-c',
                          'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def fake_installed(site: str, name: str, version: str, requires: tuple[str, ...]) -> None:
    """Metadata of an installed distribution, as pip finds it (a ``.dist-info`` folder)."""
    info = osp.join(site, f'{name.replace("-", "_")}-{version}.dist-info')
    os.makedirs(info)
    lines = ['Metadata-Version: 2.1', f'Name: {name}', f'Version: {version}']
    lines += [f'Requires-Dist: {r}' for r in requires]
    with open(osp.join(info, 'METADATA'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(osp.join(info, 'INSTALLER'), 'w') as f:
        f.write('pip\n')
    with open(osp.join(info, 'RECORD'), 'w') as f:
        f.write('')


def check(wheel: str, env_dir: str) -> tuple[bool, list[tuple[str, str]]]:
    """Run the dry run; returns (passed, [(name, version) pip would install])."""
    venv.EnvBuilder(with_pip=True).create(env_dir)
    site = _site_packages(env_dir)
    for name, version, requires in ENVIRONMENT:
        fake_installed(site, name, version, requires)
    report = osp.join(env_dir, 'report.json')
    proc = subprocess.run([osp.join(env_dir, 'bin', 'python'), '-m', 'pip', 'install',
                           '--dry-run', '--quiet', '--report', report, wheel],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'pip failed to resolve the wheel:\n{proc.stdout}\n{proc.stderr}')
    with open(report) as f:
        items = json.load(f)['install']
    planned = [(i['metadata']['name'], i['metadata']['version']) for i in items]
    touched = [(n, v) for n, v in planned if n.lower() in PROTECTED]
    return not touched, planned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('wheel', help='the built wheel, dist/stag_seg-*.whl')
    parser.add_argument('--keep', metavar='DIR', help='build the environment here and keep it')
    args = parser.parse_args(argv)
    if not osp.isfile(args.wheel):
        raise SystemExit(f'no wheel at {args.wheel}: build it first (make wheel)')
    with tempfile.TemporaryDirectory() as tmp:
        env_dir = args.keep or osp.join(tmp, 'env')
        passed, planned = check(osp.abspath(args.wheel), env_dir)
    existing = ', '.join(f'{n} {v}' for n, v, _ in ENVIRONMENT)
    print(f'existing environment: {existing}')
    print('pip would install: ' + ', '.join(f'{n} {v}' for n, v in planned))
    touched = [f'{n} {v}' for n, v in planned if n.lower() in PROTECTED]
    if touched:
        print(f'FAIL: pip would change {", ".join(touched)}')
        return 1
    print('ok: torch, torchvision, mmcv, mmengine, mmsegmentation and mmpretrain stay as they '
          'are, and no mmcv-lite is added')
    return 0


if __name__ == '__main__':
    sys.exit(main())
