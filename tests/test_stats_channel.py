"""The step's statistics travel with its outputs: the stock TestLoop with TTAHook writes the same
per-step scalars to the visualizer as ContinualTestLoop does."""
import copy
import itertools

import pytest
import torch
from conftest import build_segmentor, tiny_segmentor_cfg
from mmengine.config import Config
from mmengine.runner import Runner

from stag_seg.structures import STATS_KEY, attach_stats, step_nonfinite, step_stats

_RUN_IDS = itertools.count()
HOOK = dict(type='STAGHook', method=dict(type='Tent'),
            optim_wrapper=dict(optimizer=dict(type='Adam', lr=5e-3)))
CONDITIONS = ['fog', 'snow']  # 3 images each


def _cfg(tree, tmp_path, test_cfg):
    model = tiny_segmentor_cfg(num_classes=19)
    for key in ('adapt_optim_wrapper', 'tta_method'):
        model.pop(key)
    model['type'] = 'EncoderDecoder'
    return Config(dict(
        default_scope='mmseg', model=model, work_dir=str(tmp_path), randomness=dict(seed=0),
        experiment_name=f'stats_{next(_RUN_IDS)}', custom_hooks=[HOOK],
        test_dataloader=dict(
            batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='ACDCDataset', data_root=tree, condition=CONDITIONS,
                         pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                                   dict(type='PackSegInputs')])),
        test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        test_cfg=test_cfg, log_level='WARNING'))


def _scalars(cfg, checkpoint):
    """Every ``add_scalars`` call of the run: ``[(step, {name: value})]``."""
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    calls = []
    real = runner.visualizer.add_scalars

    def spy(scalars, step=0, **kwargs):
        calls.append((step, dict(scalars)))
        return real(scalars, step=step, **kwargs)

    runner.visualizer.add_scalars = spy
    runner.test()
    return calls


def _per_step(calls):
    return [(step, {k: v for k, v in s.items() if k.startswith(('adapt/', 'running/'))})
            for step, s in calls if any(k.startswith(('adapt/', 'running/')) for k in s)]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'seg.pth')
    torch.save(dict(state_dict=build_segmentor(num_classes=19).state_dict()), path)
    return path


def test_stock_test_loop_with_tta_hook_writes_the_scalars_of_continual_test_loop(
        tiny_tree, tmp_path, checkpoint):
    stock = _per_step(_scalars(_cfg(tiny_tree, tmp_path / 'stock', dict(type='TestLoop')),
                               checkpoint))
    continual = _per_step(_scalars(_cfg(tiny_tree, tmp_path / 'continual', dict(
        type='ContinualTestLoop', domains=[dict(name='all', dataset=dict(condition=CONDITIONS))],
        progress=False, checkpoint_interval=0)), checkpoint))
    # 6 steps, one write per step (curve_points=20 > 6), at stream steps 1..6
    assert [step for step, _ in stock] == list(range(1, 7))
    assert {'adapt/loss', 'adapt/stag_multiplier', 'adapt/stag_cos', 'adapt/tent_entropy',
            'running/mIoU'} <= set(stock[0][1])
    assert stock == continual


def test_a_step_leaves_its_statistics_on_every_output_sample():
    from mmseg.structures import SegDataSample
    samples = [SegDataSample(), SegDataSample()]
    attach_stats(samples, dict(loss=0.5), nonfinite='gradient')
    assert all(s.metainfo[STATS_KEY] == dict(loss=0.5) for s in samples)
    assert step_stats(samples) == dict(loss=0.5) and step_nonfinite(samples) == 'gradient'
    assert step_stats([]) == {} and step_nonfinite([SegDataSample()]) is None
