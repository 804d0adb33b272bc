"""Installing into an existing environment: requirements as ranges, mmcv either way, extras."""
import configparser
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from stag_seg import compat, selfcheck

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

#: The mmcv.ops stand-in, loaded on its own in the probes (the package imports mmseg).
MMCV_OPS = osp.join(ROOT, 'stag_seg', 'compat', 'mmcv_ops.py')


def _install_requires() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(osp.join(ROOT, 'setup.cfg'))
    lines = cfg['options']['install_requires'].splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith('#')]


def test_the_package_requires_ranges_and_no_mmcv_of_its_own():
    requires = _install_requires()
    names = {r.split('<')[0].split('>')[0].split('=')[0].strip().lower() for r in requires}
    assert not [r for r in requires if '==' in r]  # no pins: they live in requirements/
    assert not names & {'mmcv', 'mmcv-lite', 'mmcv-full'}  # a compiled mmcv or mmcv-lite
    for name in ('torch', 'mmengine', 'mmsegmentation', 'mmpretrain'):
        assert any(r.startswith(name) and '>=' in r for r in requires), name
    with open(osp.join(ROOT, 'requirements', 'stack.txt')) as f:
        stack = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    assert 'mmcv-lite==2.1.0' in stack and 'torch==2.14.1' in stack


def _run_compat(tmp_path, body: str) -> subprocess.CompletedProcess:
    """Load the stand-in's module on its own (not the package, which imports mmseg) in a fresh
    process, as ``compat``."""
    script = tmp_path / 'probe.py'
    script.write_text(textwrap.dedent(f'''
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location('compat_probe', {MMCV_OPS!r})
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
    ''') + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=300)


def test_compat_never_shadows_a_compiled_mmcv(tmp_path):
    fake = tmp_path / 'site' / 'mmcv'
    (fake / 'ops').mkdir(parents=True)
    (fake / '__init__.py').write_text("__version__ = '2.1.0'\n")
    (fake / '_ext.py').write_text('# stands for the compiled extension\n')
    (fake / 'ops' / '__init__.py').write_text("COMPILED = True\n")
    proc = _run_compat(tmp_path, f'''
        sys.path.insert(0, {str(tmp_path / 'site')!r})
        assert compat.install_mmcv_ops_fallback() is False
        assert compat.MMCV_OPS_FALLBACK is False
        import mmcv.ops
        assert mmcv.ops.COMPILED is True and 'stag_seg' not in (mmcv.ops.__doc__ or '')
        print('kept the compiled ops')
    ''')
    assert proc.returncode == 0, proc.stderr
    assert 'kept the compiled ops' in proc.stdout


def test_without_any_mmcv_the_error_names_both_kinds_and_the_extra(tmp_path):
    proc = _run_compat(tmp_path, '''
        sys.modules['mmcv'] = None  # as if neither mmcv nor mmcv-lite were installed
        try:
            compat.install_mmcv_ops_fallback()
        except ModuleNotFoundError as err:
            print(err)
    ''')
    assert proc.returncode == 0, proc.stderr
    assert 'compiled mmcv' in proc.stdout and "stag_seg[lite]" in proc.stdout


def test_a_missing_optional_extra_is_named():
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'stag_seg\[digits\]'"):
        compat.require_extra('no_such_module_of_an_extra', 'digits', 'tools/make_digits.py')
    assert compat.require_extra('json', 'none', 'a test').dumps([]) == '[]'


def test_make_digits_names_its_extra_without_scikit_learn(tmp_path):
    script = tmp_path / 'no_sklearn.py'
    script.write_text(textwrap.dedent(f'''
        import runpy, sys
        sys.modules['sklearn'] = None  # scikit-learn not installed
        sys.argv = ['make_digits.py', '--out', {str(tmp_path / 'digits')!r}]
        runpy.run_path({osp.join(ROOT, 'tools', 'make_digits.py')!r}, run_name='__main__')
    '''))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert "pip install 'stag_seg[digits]'" in proc.stderr


def test_selfcheck_finds_every_registration():
    names = selfcheck.check_registrations()
    assert {'STAGHook', 'TTAHook', 'ContinualTestLoop', 'TTAEncoderDecoder',
            'TTAImageClassifier', 'STAG', 'CoTTA'} <= set(names)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_a_loader_that_falls_back_to_full_pickles_is_held_to_the_allow_list(tmp_path,
                                                                          monkeypatch):
    """OneDL's mmengine loads through ``_safe_torch_load``, which retries a refused file as a
    full pickle; the guard makes it refuse instead, as the stock mmengine does."""
    import pickle

    import torch
    from mmengine.runner import checkpoint

    def falls_back(file, map_location=None, weights_only=None):
        try:
            return torch.load(file, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            return torch.load(file, map_location=map_location, weights_only=False)

    monkeypatch.setattr(checkpoint, '_safe_torch_load', falls_back, raising=False)
    marker = tmp_path / 'payload-ran'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(meta=_Payload(marker)), path)
    assert compat.guard_mmengine_checkpoint_loading() is True
    assert compat.guard_mmengine_checkpoint_loading() is False  # once
    with pytest.raises(pickle.UnpicklingError, match='refused to load'):
        checkpoint._safe_torch_load(path, map_location='cpu')
    assert not marker.exists()
    torch.save(dict(state_dict={'w': torch.ones(1)}), str(tmp_path / 'good.pth'))
    assert checkpoint._safe_torch_load(str(tmp_path / 'good.pth'))['state_dict']['w'] == 1
