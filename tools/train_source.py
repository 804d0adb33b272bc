"""Train an embedded benchmark's source model on the CPU and export a small checkpoint.

    python tools/make_synthetic_acdc.py --num-target 100     # the data, once
    python tools/train_source.py [CONFIG] \
        [--out checkpoints/segformer-mit-b0_synthetic-cityscapes.pth]

    python tools/make_digits.py                               # the classification benchmark
    python tools/train_source.py configs/digits_c/small-convnet_train.py \
        --out checkpoints/small-convnet_digits.pth

Trains with MMEngine's runner (the config's train/val loops), evaluates on the clean
validation split (mIoU for a segmentor, top-1 accuracy for a classifier), and writes
``{'state_dict': ..., 'meta': {...}}`` (weights only, float32) that ``tools/test_tta.py`` loads
with the safe loader. ``--from-checkpoint`` skips training and exports a checkpoint the runner
wrote earlier.
"""
import argparse
import os
import os.path as osp
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

DEFAULT_CONFIG = 'configs/demo/segformer-mit-b0_train.py'
DEFAULT_OUT = 'checkpoints/segformer-mit-b0_synthetic-cityscapes.pth'
MAX_MB = 20
#: The headline validation metric of each model family.
METRIC_KEYS = ('mIoU', 'accuracy/top1')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='train the demo source model on the CPU')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--out', default=DEFAULT_OUT, help='exported checkpoint')
    parser.add_argument('--work-dir', default='work_dirs/train_source')
    parser.add_argument('--from-checkpoint', help='export this runner checkpoint, no training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import stag_seg  # noqa: F401
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    minutes = None
    if args.from_checkpoint:
        cfg.load_from = args.from_checkpoint
        runner = Runner.from_cfg(cfg)
        runner.load_checkpoint(args.from_checkpoint)
    else:
        runner = Runner.from_cfg(cfg)
        start = time.time()
        runner.train()
        minutes = round((time.time() - start) / 60, 1)
    metrics = runner.val_loop.run()
    key = next((k for k in METRIC_KEYS if k in metrics), None)
    if key is None:
        raise SystemExit(f'the validation metrics {sorted(metrics)} hold none of {METRIC_KEYS}')
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    state = {k: v.detach().float().cpu().clone() if v.is_floating_point() else v.cpu().clone()
             for k, v in model.state_dict().items()}
    meta = dict(config=osp.basename(args.config), iters=int(cfg.train_cfg.max_iters),
                seed=int(runner.seed), val_metric=key, val_value=float(metrics[key]),
                train_minutes=minutes,
                torch=str(torch.__version__),
                classes=list(runner.val_dataloader.dataset.metainfo['classes']))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(dict(state_dict=state, meta=meta), args.out)
    size_mb = osp.getsize(args.out) / 2**20
    print(f'exported {len(state)} tensors to {args.out} ({size_mb:.2f} MB); clean val {key} '
          f'{meta["val_value"]:.2f} after {meta["iters"]} iterations')
    if size_mb > MAX_MB:
        raise SystemExit(f'{args.out} is {size_mb:.1f} MB, over the {MAX_MB} MB budget')


if __name__ == '__main__':
    main()
