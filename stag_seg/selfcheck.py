"""Check an installation of stag_seg in the current environment: ``python -m stag_seg.selfcheck``.

What it checks, from any directory and with nothing but the installed packages:

1. ``import stag_seg`` and which mmcv it found (compiled ops, or the pure-PyTorch fallback over
   mmcv-lite);
2. the registrations a config names: ``STAGHook``, ``TTAHook`` and ``ContinualTestLoop`` in
   MMEngine's root registries, ``TTAEncoderDecoder`` in mmseg's, ``TTAImageClassifier`` in
   mmpretrain's, the methods and STAG in the toolkit's own;
3. one adapted run of MMSeg's *stock* SegFormer-B0 Cityscapes config, with only what a user adds
   (``custom_imports``, a ``STAGHook`` with Tent, the data path, a smaller input) on a few
   generated images in a temporary Cityscapes tree: the stock ``TestLoop`` runs, the decode
   head's norm layers move, and STAG's statistics are part of the last step's.

Prints one line per check and exits with 1 when one fails.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import tempfile

import numpy as np

STOCK_CONFIG = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'


def write_cityscapes(root: str, num: int = 2, size: tuple[int, int] = (64, 128)) -> None:
    """``num`` random images and label maps in the layout of MMSeg's ``CityscapesDataset``."""
    import cv2
    rng = np.random.default_rng(0)
    img_dir = osp.join(root, 'leftImg8bit', 'val', 'town')
    seg_dir = osp.join(root, 'gtFine', 'val', 'town')
    os.makedirs(img_dir)
    os.makedirs(seg_dir)
    for i in range(num):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        label = rng.integers(0, 19, size, dtype=np.uint8)
        cv2.imwrite(osp.join(img_dir, f'town_{i:06d}_000019_leftImg8bit.png'), image)
        cv2.imwrite(osp.join(seg_dir, f'town_{i:06d}_000019_gtFine_labelTrainIds.png'), label)


def check_registrations() -> list[str]:
    """The registered names a config can use; raises KeyError naming a missing one."""
    from mmengine.registry import HOOKS, LOOPS
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    from stag_seg.registry import TTA_METHODS, TTA_REGULARIZERS
    wanted = [(HOOKS, 'STAGHook'), (HOOKS, 'TTAHook'), (LOOPS, 'ContinualTestLoop'),
              (SEG_MODELS, 'TTAEncoderDecoder'), (SEG_MODELS, 'TTACascadeEncoderDecoder'),
              (PRETRAIN_MODELS, 'TTAImageClassifier'),
              (TTA_REGULARIZERS, 'STAG')] + [
                  (TTA_METHODS, m) for m in ('Source', 'Norm', 'Tent', 'EATA', 'SAR', 'DeYO',
                                             'CoTTA')]
    for registry, name in wanted:
        if registry.get(name) is None:
            raise KeyError(f'{name} is not registered in {registry.name}')
    return [name for _, name in wanted]


def _stats_recorder():
    """A hook keeping the adapting method's statistics of every step."""
    from mmengine.hooks import Hook

    from stag_seg.structures import step_stats

    class StatsRecorder(Hook):
        priority = 'LOW'  # after the adaptation hook (VERY_HIGH)

        def __init__(self) -> None:
            self.stats: dict = {}

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            self.stats.update(step_stats(outputs))

    return StatsRecorder()


def adapted_stock_run(work_dir: str) -> dict:
    """The stock SegFormer-B0 Cityscapes config with a ``STAGHook``; returns what it measured."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    data_root = osp.join(work_dir, 'cityscapes')
    write_cityscapes(data_root)
    # what a user writes: the stock config as a base, plus the toolkit and its hook
    config = osp.join(work_dir, 'segformer_mit-b0_cityscapes_stag-hook.py')
    with open(config, 'w') as f:
        f.write(f"_base_ = [{STOCK_CONFIG!r}]\n"
                "custom_imports = dict(imports=['stag_seg'], allow_failed_imports=False)\n"
                "custom_hooks = [dict(type='STAGHook', method=dict(type='Tent'),\n"
                "                     optim_wrapper=dict(optimizer=dict(type='Adam', "
                "lr=1e-3)))]\n"
                f"test_dataloader = dict(num_workers=0, persistent_workers=False,\n"
                f"                       dataset=dict(data_root={data_root!r}))\n")
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(work_dir=osp.join(work_dir, 'run'), log_level='WARNING',
                             load_from=None, randomness=dict(seed=0)))
    # a small input keeps the check to seconds on a CPU: (256, 128) instead of (2048, 1024)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (256, 128)
    cfg.model.test_cfg = dict(mode='whole')
    cfg.model.backbone.pop('init_cfg', None)  # no pretrained download
    runner = Runner.from_cfg(cfg)
    recorder = _stats_recorder()
    runner.register_hook(recorder)
    head = runner.model.decode_head
    norms = [m for m in head.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    before = [m.weight.detach().clone() for m in norms]
    metrics = runner.test()
    moved = sum(not torch.equal(a, m.weight.detach()) for a, m in zip(before, norms))
    stats = recorder.stats
    miou = metrics.get('mIoU')
    return dict(mIoU=None if miou is None else round(float(miou), 2), norm_layers_moved=moved,
                norm_layers=len(norms), stag_stats=sorted(k for k in stats if k.startswith('stag')))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--skip-run', action='store_true', help='only import and registry checks')
    args = parser.parse_args(argv)
    failed = False
    try:
        import stag_seg
        from stag_seg import compat
        mmcv_kind = ('mmcv-lite with the pure-PyTorch ops fallback' if compat.MMCV_OPS_FALLBACK
                     else 'compiled mmcv (its own ops)')
        print(f'ok   import stag_seg {stag_seg.__version__} from {osp.dirname(stag_seg.__file__)}'
              f'; mmcv: {mmcv_kind}')
        print(f'ok   registrations: {", ".join(check_registrations())}')
    except Exception as exc:  # report every kind of failure, then exit non-zero
        print(f'FAIL {type(exc).__name__}: {exc}')
        return 1
    if args.skip_run:
        return 0
    from stag_seg import compat
    compat.prepare_environment()  # mmseg:: config paths under the OneDL forks, safe loading
    with tempfile.TemporaryDirectory() as tmp:
        try:
            found = adapted_stock_run(tmp)
        except Exception as exc:
            print(f'FAIL adapted stock run: {type(exc).__name__}: {exc}')
            return 1
    if found['norm_layers_moved'] == 0 or not found['stag_stats'] or found['mIoU'] is None:
        failed = True
    print(f'{"FAIL" if failed else "ok  "} adapted run of {STOCK_CONFIG} with STAGHook: {found}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
