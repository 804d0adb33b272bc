"""compat: the mmcv.ops fallback, safe checkpoint loading and SyncBN without a process group."""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stag_seg import compat


def test_fallback_is_installed_only_without_compiled_ops():
    import importlib.util
    compiled = importlib.util.find_spec('mmcv._ext') is not None
    assert compat.MMCV_OPS_FALLBACK is (not compiled)
    if compiled:
        pytest.skip('compiled mmcv ops are installed: the fallback must not shadow them')
    import mmcv.ops
    assert mmcv.ops.point_sample is compat.point_sample


def test_point_sample_fallback_samples_bilinearly_at_pixel_centres():
    img = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).view(2, 3, 4, 5)
    # the centre of pixel (row 1, col 2) is at ((2 + .5) / 5, (1 + .5) / 4) in [0, 1] coordinates
    points = torch.tensor([[[2.5 / 5, 1.5 / 4]], [[0.5 / 5, 3.5 / 4]]], dtype=torch.float64)
    out = compat.point_sample(img, points)
    assert out.shape == (2, 3, 1)
    torch.testing.assert_close(out[0, :, 0], img[0, :, 1, 2])
    torch.testing.assert_close(out[1, :, 0], img[1, :, 3, 0])
    # halfway between two pixel centres: their mean
    mid = compat.point_sample(img, torch.tensor([[[2.0 / 5, 1.5 / 4]]] * 2, dtype=torch.float64))
    torch.testing.assert_close(mid[0, :, 0], (img[0, :, 1, 1] + img[0, :, 1, 2]) / 2)


def test_sigmoid_focal_loss_fallback_matches_the_published_formula():
    torch.manual_seed(0)
    pred, target = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 4, (6, ))
    gamma, alpha = 2.0, 0.25
    p = pred.sigmoid()
    y = F.one_hot(target, 4).double()
    p_t = p * y + (1 - p) * (1 - y)
    a_t = alpha * y + (1 - alpha) * (1 - y)
    expected = (-a_t * (1 - p_t) ** gamma * torch.log(p_t)).sum() / 6
    torch.testing.assert_close(compat.sigmoid_focal_loss(pred, target, gamma, alpha), expected)


def test_sigmoid_focal_loss_fallback_weighs_rows_by_target_class_and_knows_background():
    torch.manual_seed(1)
    pred = torch.randn(5, 3, dtype=torch.float64)
    target = torch.tensor([0, 2, 3, 1, 3])  # 3 = background: every class negative
    weight = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    plain = compat.sigmoid_focal_loss(pred, target, reduction='none')
    weighted = compat.sigmoid_focal_loss(pred, target, weight=weight, reduction='none')
    expected_rows = torch.tensor([0.5, 3.0, 1.0, 2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(weighted, plain * expected_rows.view(-1, 1))
    p = pred[2].sigmoid()  # background row: the alpha-balanced negative term for every class
    torch.testing.assert_close(plain[2], -(1 - 0.25) * p**2 * torch.log(1 - p))


def test_missing_op_stubs_are_one_class_per_name():
    if not compat.MMCV_OPS_FALLBACK:
        pytest.skip('compiled mmcv ops are installed')
    import mmcv.ops
    assert mmcv.ops.DeformConv2d is mmcv.ops.DeformConv2d


def test_ops_without_fallback_fail_clearly_when_used():
    if not compat.MMCV_OPS_FALLBACK:
        pytest.skip('compiled mmcv ops are installed')
    from mmcv.ops import DeformConv2d
    with pytest.raises(ModuleNotFoundError, match='mmcv.ops.DeformConv2d needs the compiled'):
        DeformConv2d(3, 3, 3)


def test_mmengine_checkpoint_contents_load_with_the_allow_list(tmp_path):
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(0.5)
    buffer.update(0.25)
    buffer.min()  # fills _statistics_methods, pickled through getattr(HistoryBuffer, ...)
    ckpt = dict(state_dict={'w': torch.ones(2)}, meta=dict(np_value=np.float64(1.5),
                                                           arr=np.arange(3), dtype=np.dtype('f4')),
                message_hub=dict(log_scalars={'train/loss': buffer}))
    path = str(tmp_path / 'mm.pth')
    torch.save(ckpt, path)
    loaded = compat.load_checkpoint(path)
    assert loaded['meta']['np_value'] == 1.5 and loaded['meta']['arr'].tolist() == [0, 1, 2]
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == pytest.approx(0.375)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _Plain:
    """An ordinary object: not on the allow-list, harmless to unpickle."""


class _SneakyGetattr:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / 'payload-ran'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=_Payload(marker)), path)
    with pytest.raises(pickle.UnpicklingError, match='refused to load .*evil.pth'):
        compat.load_checkpoint(path)
    assert not marker.exists()
    # the same file through MMEngine's own loader (what Runner.load_checkpoint uses)
    from mmengine.runner import CheckpointLoader
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert not marker.exists()


def test_checkpoints_pickled_under_numpy_1_load_too(tmp_path):
    path = str(tmp_path / 'np1.pth')
    torch.save(dict(meta=dict(arr=np.arange(4), value=np.float64(2.5))), path)
    # rewrite the pickle's references as numpy 1.x writes them (numpy.core, not numpy._core)
    import zipfile
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in items if n.endswith('data.pkl'))
    assert b'numpy._core.multiarray' in items[name]
    items[name] = items[name].replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    with zipfile.ZipFile(path, 'w') as z:
        for n, data in items.items():
            z.writestr(n, data)
    loaded = compat.load_checkpoint(path)
    assert loaded['meta']['arr'].tolist() == [0, 1, 2, 3] and loaded['meta']['value'] == 2.5


def test_getattr_in_a_checkpoint_reaches_only_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'getattr.pth')
    torch.save(dict(x=_SneakyGetattr()), path)
    with pytest.raises(pickle.UnpicklingError, match='only resolves the statistics methods'):
        compat.load_checkpoint(path)


def test_full_pickle_loading_is_an_explicit_opt_in_that_warns(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '0')  # restored after the test
    path = str(tmp_path / 'object.pth')
    torch.save(dict(meta=_Plain()), path)
    with pytest.raises(pickle.UnpicklingError):
        compat.load_checkpoint(path)
    with pytest.warns(UserWarning, match='can now run arbitrary code'):
        compat.enable_full_pickle_loading()
    assert isinstance(compat.load_checkpoint(path)['meta'], _Plain)


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found: .*nope.pth'):
        compat.load_checkpoint(str(tmp_path / 'nope.pth'))


def test_syncbn_becomes_bn_without_a_process_group():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    model = compat.revert_sync_batchnorm(model)
    assert type(model[1]) is not nn.SyncBatchNorm
    assert isinstance(model[1], nn.modules.batchnorm._BatchNorm)
    assert torch.equal(model[1].running_mean, torch.full((4, ), 0.5))
    model.train()
    model(torch.randn(2, 3, 5, 5))  # SyncBN in train mode would need a process group


def test_a_distributed_config_runs_on_cpus_with_gloo_and_cpu_placed_ddp(monkeypatch):
    from mmengine.config import Config

    def config(launcher, **extra):
        return Config(dict(launcher=launcher, env_cfg=dict(dist_cfg=dict(backend='nccl')),
                           **extra))

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = config('pytorch')
    assert compat.cpu_distributed_config(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False)
    # a backend or wrapper the config chose stays
    cfg = config('slurm', model_wrapper_cfg=dict(type='Mine'))
    cfg.env_cfg.dist_cfg.backend = 'mpi'
    assert compat.cpu_distributed_config(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'mpi' and cfg.model_wrapper_cfg == dict(type='Mine')
    # one process, or a GPU: nothing changes
    cfg = config('none')
    assert not compat.cpu_distributed_config(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in cfg
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = config('pytorch')
    assert not compat.cpu_distributed_config(cfg) and 'model_wrapper_cfg' not in cfg
