"""Bad input, non-finite values and the collapse guard on a tiny continual stream."""
import glob
import itertools
import json
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from conftest import build_segmentor, make_batch, state_copy, tiny_segmentor_cfg
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from stag_seg.engine.guards import BadInputError, CollapseGuard, batch_files, check_batch
from stag_seg.structures import step_nonfinite, step_stats

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
_IDS = itertools.count()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'seg.pth')
    torch.save(dict(state_dict=build_segmentor(num_classes=19).state_dict()), path)
    return path


def _tree(tiny_tree, tmp_path):
    """A private copy of the tiny tree, to damage."""
    root = str(tmp_path / 'tree')
    shutil.copytree(tiny_tree, root)
    return root


def _files(root, domain, kind='rgb_anon'):
    return sorted(glob.glob(osp.join(root, kind, domain, 'train', '*', '*.png')))


def _run(root, checkpoint, tmp_path, **test_cfg):
    model = tiny_segmentor_cfg(dict(type='Tent'), num_classes=19)
    model['adapt_optim_wrapper'] = dict(optimizer=dict(type='SGD', lr=1e-3))
    base = osp.join(ROOT, 'configs', '_base_')
    cfg = Config.fromfile(osp.join(base, 'datasets', 'synthetic_acdc.py'))
    cfg.merge_from_dict(dict(
        default_scope='mmseg', model=model, work_dir=str(tmp_path / 'work'),
        experiment_name=f'reliability_{next(_IDS)}', randomness=dict(seed=0),
        load_from=checkpoint, log_level='WARNING'))
    cfg.test_dataloader.dataset.data_root = root
    cfg.test_dataloader.num_workers = 0
    cfg.test_cfg = dict(type='ContinualTestLoop', domains=['fog', 'night'], rounds=1,
                        progress=False, **test_cfg)
    runner = Runner.from_cfg(cfg)
    runner.test()
    with open(osp.join(cfg.work_dir, 'tta_results.json')) as f:
        return runner, json.load(f)


def _partial(tmp_path):
    with open(tmp_path / 'work' / 'tta_results.partial.json') as f:
        return json.load(f)


def test_a_truncated_image_stops_the_run_naming_it_after_writing_the_results_so_far(
        tiny_tree, tmp_path, checkpoint):
    root = _tree(tiny_tree, tmp_path)
    bad = _files(root, 'night')[1]
    with open(bad, 'r+b') as f:
        f.truncate(40)
    with pytest.raises(BadInputError) as info:
        _run(root, checkpoint, tmp_path)
    message = str(info.value)
    assert "domain 'night', step 1" in message and bad in message
    partial = _partial(tmp_path)
    assert partial['complete'] is False and bad in partial['failure']
    assert [r['domain'] for r in partial['records']] == ['fog']  # gathered before the failure


def test_skip_logs_and_counts_an_unreadable_image_and_scores_the_rest(tiny_tree, tmp_path,
                                                                      checkpoint):
    root = _tree(tiny_tree, tmp_path)
    bad = _files(root, 'night')[0]
    with open(bad, 'wb') as f:
        f.write(b'not an image')
    _, doc = _run(root, checkpoint, tmp_path, on_bad_input='skip')
    fog, night = doc['records']
    assert fog['bad_inputs'] == 0 and fog['num_samples'] == 3
    assert night['bad_inputs'] == 1 and night['num_samples'] == 2
    assert night['skipped_items'][0]['step'] == 0 and bad in night['skipped_items'][0]['error']
    assert doc['bad_inputs'] == 1


@pytest.mark.parametrize('damage, match', [
    ('size', r'label map of size \(16, 32\) for an image of size \(32, 64\)'),
    ('ids', r'label ids \[40\] outside the 19 classes'),
])
def test_unscorable_labels_are_named(tiny_tree, tmp_path, checkpoint, damage, match):
    root = _tree(tiny_tree, tmp_path)
    label = _files(root, 'fog', 'gt')[2]
    array = np.array(Image.open(label))
    if damage == 'size':
        array = array[:16, :32]
    else:
        array[0, 0] = 40
    Image.fromarray(array).save(label)
    with pytest.raises(BadInputError, match=match) as info:
        _run(root, checkpoint, tmp_path)
    assert label in str(info.value) and "domain 'fog', step 2" in str(info.value)


def test_grayscale_and_rgba_images_are_read_as_colour(tiny_tree, tmp_path, checkpoint):
    root = _tree(tiny_tree, tmp_path)
    first, second = _files(root, 'fog')[:2]
    Image.open(first).convert('L').save(first)
    Image.open(second).convert('RGBA').save(second)
    _, doc = _run(root, checkpoint, tmp_path)
    assert doc['records'][0]['num_samples'] == 3 and doc['bad_inputs'] == 0


def _poison(runner, step):
    """Make the preprocessed input of the ``step``-th batch NaN."""
    model = runner.model
    original = model.data_preprocessor.forward
    calls = itertools.count()

    def forward(data, training=False):
        out = original(data, training)
        if next(calls) == step:
            out['inputs'] = torch.full_like(out['inputs'], float('nan'))
        return out

    model.data_preprocessor.forward = forward


@pytest.mark.parametrize('policy', ['error', 'skip'])
def test_nan_logits_never_reach_the_weights(tiny_tree, tmp_path, checkpoint, policy,
                                            monkeypatch):
    from stag_seg.engine import continual_loop
    seen = {}
    original_run = continual_loop.ContinualTestLoop.run

    def run(self):
        _poison(self.runner, 1)
        seen['runner'] = self.runner
        return original_run(self)

    monkeypatch.setattr(continual_loop.ContinualTestLoop, 'run', run)
    if policy == 'error':
        with pytest.raises(BadInputError, match=r"domain 'fog', step 1: non-finite logits"):
            _run(tiny_tree, checkpoint, tmp_path)
        assert _partial(tmp_path)['records'] == []
    else:
        _, doc = _run(tiny_tree, checkpoint, tmp_path, on_bad_input='skip')
        assert doc['records'][0]['nonfinite_steps'] == 1 and doc['nonfinite_steps'] == 1
        assert doc['records'][1]['nonfinite_steps'] == 0
    for name, value in seen['runner'].model.state_dict().items():
        assert torch.isfinite(value.float()).all(), name


def test_an_infinite_gradient_is_dropped_without_a_step():
    model = build_segmentor(dict(type='Tent'), num_classes=4)
    before = state_copy(model)
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    norm.weight.register_hook(lambda grad: torch.full_like(grad, float('inf')))
    out = model.test_step(make_batch(seed=0))
    assert step_stats(out)['nonfinite'] == 1.0 and step_nonfinite(out) == 'gradient'
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def _outputs(probs):
    """Segmentation outputs whose logits give ``probs`` (C, H, W) per pixel."""
    sample = SegDataSample()
    sample.seg_logits = PixelData(data=probs.clamp_min(1e-9).log())
    return [sample]


def test_the_collapse_guard_fires_on_a_collapse_and_not_on_a_healthy_stream():
    gen = torch.Generator().manual_seed(0)
    healthy = CollapseGuard(entropy_below=0.2, min_classes=3, window=5, warmup=2)
    for _ in range(40):
        logits = torch.randn(6, 8, 8, generator=gen) * 2
        assert healthy.step(_outputs(logits.softmax(0))) is None
    collapsed = torch.zeros(6, 8, 8)
    collapsed[0] = 1.0  # one class, zero entropy, everywhere
    guard = CollapseGuard(entropy_below=0.2, warmup=2)
    reasons = [guard.step(_outputs(collapsed)) for _ in range(3)]
    assert reasons[:2] == [None, None] and 'entropy average' in reasons[2]
    classes = CollapseGuard(min_classes=3, window=4, warmup=0)
    confident_two = torch.zeros(6, 8, 8)
    confident_two[0, :4], confident_two[1, 4:] = 0.6, 0.6
    confident_two[2:] = 0.1  # entropy stays high; only 2 classes are ever predicted
    reasons = [classes.step(_outputs(confident_two)) for _ in range(4)]
    assert reasons[:3] == [None] * 3 and '2 classes hold' in reasons[3]
    periodic = CollapseGuard(every=3)
    assert [bool(periodic.step(_outputs(confident_two))) for _ in range(6)] == [
        False, False, True, False, False, True]


def test_the_loop_counts_the_guard_resets(tiny_tree, tmp_path, checkpoint):
    runner, doc = _run(tiny_tree, checkpoint, tmp_path, collapse_guard=dict(every=2))
    # 3 steps per domain: resets at stream steps 2, 4, 6 -> fog: 1, night: 2
    assert [r['guard_resets'] for r in doc['records']] == [1, 2]
    assert doc['guard_resets'] == 3


def test_bad_guard_and_policy_settings_are_clear_errors():
    with pytest.raises(ValueError, match='at least one of entropy_below'):
        CollapseGuard()
    with pytest.raises(ValueError, match='every must be an int >= 1'):
        CollapseGuard(every=0)
    with pytest.raises(ValueError, match=r"on_bad_input must be one of \('error', 'skip'\)"):
        from stag_seg.engine import ContinualTestLoop
        ContinualTestLoop(None, {}, None, ['fog'], on_bad_input='ignore')


def test_check_batch_accepts_ignored_pixels_and_names_classification_labels():
    sample = SegDataSample(metainfo=dict(ori_shape=(2, 2), seg_map_path='a.png'))
    sample.gt_sem_seg = PixelData(data=torch.tensor([[[0, 255], [18, 3]]]))
    check_batch(dict(data_samples=[sample]), 19)
    from mmpretrain.structures import DataSample
    cls = DataSample(metainfo=dict(img_path='x.jpg')).set_gt_label(7)
    with pytest.raises(ValueError, match=r'x.jpg: label \[7\] outside the 5 classes'):
        check_batch(dict(data_samples=[cls]), 5)


# ---------------------------------------------------------------------------- kill and resume
KILLER = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAtStep(Hook):
    """Test-only: SIGKILL this process before stream step ``step`` + 1, mid-domain."""

    def __init__(self, step):
        self.step = step

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        if runner.test_loop.stream_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _stream_config(tmp_path, tiny_tree, method, kill_at=None):
    model = tiny_segmentor_cfg(method, num_classes=19)
    model['adapt_optim_wrapper'] = dict(optimizer=dict(type='Adam', lr=1e-3))
    base = osp.join(ROOT, 'configs', '_base_')
    lines = [
        f"_base_ = [{osp.join(base, 'datasets', 'synthetic_acdc.py')!r}, "
        f"{osp.join(base, 'default_runtime.py')!r}]",
        f'model = {model!r}',
        # a random transform: the data depend on the restored random generators
        f'test_dataloader = dict(num_workers=0, dataset=dict(data_root={tiny_tree!r}, '
        "pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), "
        "dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]))",
        'test_cfg = dict(rounds=2, checkpoint_interval=2, progress=False)',
        "randomness = dict(seed=0, deterministic=True)"]
    if kill_at is not None:
        lines += ["custom_imports = dict(imports=['stag_seg', 'killer'], "
                  'allow_failed_imports=False)',
                  f"custom_hooks = [dict(type='KillAtStep', step={kill_at})]"]
    path = tmp_path / f'{method["type"]}_{kill_at}.py'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def _test_tta(*args, tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), ROOT, os.environ.get('PYTHONPATH', '')]))
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test_tta.py'), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)


def _comparable(doc):
    return dict(mean=doc['mean'], records=[{k: v for k, v in r.items() if k != 'seconds'}
                                           for r in doc['records']])


TENT_STAG = dict(type='Tent', regularizers=[dict(type='STAG')])
COTTA_STAG = dict(type='CoTTA', scales=(1.0, 1.5), regularizers=[dict(type='STAG', anchors='live')])


@pytest.mark.parametrize('method, kill_at', [
    (TENT_STAG, 5),  # saved at step 4, mid-night
    (TENT_STAG, 7),  # saved at step 6, the last of night: resumes into an ended domain
    (COTTA_STAG, 5),
], ids=['tent_stag_mid_domain', 'tent_stag_domain_end', 'cotta_stag_mid_domain'])
def test_a_run_killed_and_resumed_gives_the_uninterrupted_results(tiny_tree, tmp_path,
                                                                   checkpoint, method, kill_at):
    (tmp_path / 'killer.py').write_text(KILLER)
    whole, cut = tmp_path / 'whole', tmp_path / 'cut'
    proc = _test_tta(_stream_config(tmp_path, tiny_tree, method), checkpoint, '--work-dir',
                     str(whole), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (whole / 'tta_state').exists()  # a complete run leaves nothing to resume
    # stream steps 1-3 fog, 4-6 night, 7-9 rain, ...; a state every 2 steps
    proc = _test_tta(_stream_config(tmp_path, tiny_tree, method, kill_at=kill_at), checkpoint,
                     '--work-dir', str(cut), tmp_path=tmp_path)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert list((cut / 'tta_state').glob('*.pth')) and not (cut / 'tta_results.json').exists()
    proc = _test_tta(_stream_config(tmp_path, tiny_tree, method), checkpoint, '--work-dir',
                     str(cut), '--resume', tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout + proc.stderr
    with open(whole / 'tta_results.json') as f, open(cut / 'tta_results.json') as g:
        assert _comparable(json.load(g)) == _comparable(json.load(f))


def test_resume_without_a_saved_state_is_a_clear_error(tiny_tree, tmp_path, checkpoint):
    config = _stream_config(tmp_path, tiny_tree, dict(type='Tent'))
    proc = _test_tta(config, checkpoint, '--work-dir', str(tmp_path / 'none'), '--resume',
                     tmp_path=tmp_path)
    assert proc.returncode != 0 and '--resume: no saved state in' in proc.stderr


def test_a_message_names_files_or_array_indices_without_repeating_placeholders():
    from mmpretrain.structures import DataSample
    files = [SegDataSample(metainfo=dict(img_path='a.png', seg_map_path='a_gt.png'))]
    assert batch_files(dict(data_samples=files)) == 'a.png / a_gt.png'
    arrays = [DataSample(metainfo=dict(sample_idx=i)) for i in (7, 3)]
    assert batch_files(dict(data_samples=files + arrays)) == \
        'a.png / a_gt.png, samples 7, 3 of the data set (no file names)'
    assert batch_files(dict(data_samples=[DataSample()] * 64)) == '64 samples without file names'
    assert batch_files(dict(data_samples=[])) == '<a batch without data samples>'
