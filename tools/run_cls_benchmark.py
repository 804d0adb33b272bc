"""Digits-C: Source, Tent, EATA, SAR and DeYO, each with and without STAG, in four settings.

    python tools/run_cls_benchmark.py [--settings continual label_shift batch1 mixed]
                                      [--methods source tent ...] [--seeds 0 1 2]
                                      [--with-logit] [--family gn|bn|ln|vit]
                                      [--out work_dirs/demo_cls]

The settings (the continual protocol and the three "wild" ones of SAR, Niu et al. ICLR 2023),
all over the 15 corruptions of ``configs/_base_/datasets/digits_c.py``:

- ``continual``: one corruption after another, each shuffled (seeded), batch size 64;
- ``label_shift``: the same, each corruption in class-sorted order (classes in a seeded
  order: online imbalanced label shift at its most severe), batch size 64;
- ``batch1``: the same as continual at batch size 1, on a seeded subset of
  ``--batch1-images`` per corruption, with the learning rate scaled to the batch by each
  method's rule as its config states it (``lr_scaling``, ``stag_seg.engine.scaled_lr``: the
  public scripts' ``lr * 2 * batch / 64`` below 32 for CNNs, ``lr * batch / 64`` for the ViT,
  doubled again at batch size 1 for SAR and DeYO);
- ``mixed``: one shuffled stream over all 15 corruptions together, batch size 64.

Each run is ``configs/digits_c/small-convnet_<method>.py`` through MMEngine's runner and
``ContinualTestLoop`` (in this process; its results in ``<out>/<setting>/<method>/seed<k>``).
The table gives the error (100 - top-1 accuracy, mean over the stream's domains) per setting,
averaged over the seeds; ``table.{md,json}`` hold it with every seed's value. The seed sets
the stream order, the batch-1 subset, and the methods' own randomness.

``--family`` swaps the source model for the normalization-family comparison: SmallConvNet
with BatchNorm (adding a Norm row) or LayerNorm, or a small ViT, each with its committed
checkpoint (``configs/digits_c/*_train.py`` trained them).
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import os.path as osp
import statistics
import time
import warnings

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from stag_seg.engine import scaled_lr

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs/digits_c/small-convnet_{}.py')
SETTINGS = ('continual', 'label_shift', 'batch1', 'mixed')
#: ``--family``: the train config whose model replaces the configs' (backbone, neck, head and
#: data preprocessor) and its committed checkpoint. ``gn`` is the configs' own model.
FAMILIES = {
    'gn': ('small-convnet_train', 'small-convnet_digits'),
    'bn': ('small-convnet-bn_train', 'small-convnet-bn_digits'),
    'ln': ('small-convnet-ln_train', 'small-convnet-ln_digits'),
    'vit': ('vit-tiny_train', 'vit-tiny_digits'),
}
#: The row of the BatchNorm family: Norm (test-batch statistics).
NORM_ROW = ('Norm', 'norm', None)
#: The row ``--with-logit`` adds after Tent: STAG's logit reading with lambda 4.
LOGIT_ROW = ('Tent, STAG logit λ=4', 'tent', 'tent_stag_logit')
#: (row name, config suffix without STAG, with STAG or None)
RUNS = [
    ('Source', 'source', None),
    ('Tent', 'tent', 'tent_stag'),
    ('EATA (with Fisher)', 'eata_fisher', 'eata_stag_fisher'),
    ('SAR', 'sar', 'sar_stag'),
    ('DeYO', 'deyo', 'deyo_stag'),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Digits-C: methods +- STAG in four settings')
    parser.add_argument('--settings', nargs='+', choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument('--methods', nargs='+', help='config suffixes without _stag '
                        f'(default: {" ".join(r[1] for r in RUNS)})')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--family', choices=tuple(FAMILIES), default='gn',
                        help='the source model: SmallConvNet with GroupNorm (gn, default), '
                        'BatchNorm (bn) or LayerNorm (ln), or a small ViT (vit)')
    parser.add_argument('--with-logit', action='store_true',
                        help='add a row: Tent + STAG in the logit reading, lambda 4')
    parser.add_argument('--batch1-images', type=int, default=100,
                        help='images per corruption in the batch-1 setting (default 100)')
    parser.add_argument('--severity', type=int, default=5)
    parser.add_argument('--data-root', default='data/digits_c', help='Digits-C (CIFAR-C layout)')
    parser.add_argument('--source-root', default='data/digits',
                        help='the clean digits (EATA\'s Fisher set: <source-root>/train)')
    parser.add_argument('--out', default='work_dirs/demo_cls')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override keys of every run\'s config (before the setting)')
    return parser.parse_args()


def setting_config(cfg: Config, setting: str, seed: int, args: argparse.Namespace) -> Config:
    """``cfg`` (a Digits-C config) turned into ``setting`` with ``seed``."""
    cfg = copy.deepcopy(cfg)
    loader, test_cfg = cfg.test_dataloader, cfg.test_cfg
    if setting not in SETTINGS:
        raise ValueError(f'unknown setting {setting!r}; choose from {SETTINGS}')
    loader.dataset.update(severity=args.severity, data_root=args.data_root)
    fisher = cfg.model.get('tta_method', {}).get('fisher_data')
    if fisher:
        fisher.dataloader.dataset.data_root = osp.join(args.source_root, 'train')
    corruptions = list(test_cfg.domains)
    # within each corruption the order is a seeded shuffle, except under label shift
    order = 'class_sorted' if setting == 'label_shift' else 'mixed'
    if setting == 'mixed':  # one domain: every corruption, shuffled together
        test_cfg.domains = [dict(name='mixed', dataset=dict(vary=dict(corruption=corruptions)))]
    else:
        test_cfg.domain_key = 'datasets.0.corruption'
    if setting == 'batch1':
        loader.batch_size = 1
        loader.dataset.update(num_images=args.batch1_images, seed=seed)
        optim = cfg.model.get('adapt_optim_wrapper')
        if optim is not None:  # each method's own rule, stated in its config
            optim.optimizer.lr = scaled_lr(optim.optimizer.lr, 1, **cfg.get('lr_scaling', {}))
    loader.dataset = dict(type='StreamDataset', datasets=[loader.dataset], order=order,
                          seed=seed)
    test_cfg.progress = False
    test_cfg.checkpoint_interval = 0
    cfg.randomness = dict(seed=seed)
    return cfg


def run(name: str, setting: str, seed: int, args: argparse.Namespace) -> dict:
    """One run; returns its results document."""
    cfg = Config.fromfile(CONFIG.format(name))
    family = getattr(args, 'family', 'gn')
    if family != 'gn':
        train_cfg, checkpoint = FAMILIES[family]
        family_cfg = Config.fromfile(osp.join(ROOT, 'configs/digits_c', f'{train_cfg}.py'))
        model = family_cfg.model
        for key in ('data_preprocessor', 'backbone', 'neck', 'head'):
            cfg.model[key] = model.get(key)
        if 'lr_scaling' in cfg and 'lr_scaling' in family_cfg:  # the ViT's rule
            cfg.lr_scaling.update(family_cfg.lr_scaling)
        cfg.load_from = f'checkpoints/{checkpoint}.pth'
    # Source has no optimizer: options for it apply to the adapting runs only
    options = {k: v for k, v in getattr(args, 'cfg_options', {}).items()
               if not k.startswith('model.adapt_optim_wrapper')
               or 'adapt_optim_wrapper' in cfg.model}
    cfg.merge_from_dict(options)
    cfg = setting_config(cfg, setting, seed, args)
    cfg.work_dir = osp.join(args.out, setting, name, f'seed{seed}')
    cfg.experiment_name = f'{setting}_{name}_seed{seed}'
    cfg.log_level = 'WARNING'
    with warnings.catch_warnings():
        # every run builds a visualizer of the same name in this one process
        warnings.filterwarnings('ignore', message='.*instance named of visualizer has been')
        runner = Runner.from_cfg(cfg)
    runner.test()
    # one runner per run in this process: close its log file
    for handler in MMLogger.get_current_instance().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.close()
    with open(osp.join(cfg.work_dir, 'tta_results.json')) as f:
        return json.load(f)


def error(doc: dict) -> float:
    """100 - the mean top-1 accuracy over the stream's domains."""
    return 100.0 - doc['mean']


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)
    for path in (args.data_root, osp.join(args.source_root, 'train')):
        if not osp.isdir(path):
            raise SystemExit(f'no {path}: run `make demo-cls-data` first')
    runs = RUNS[:2] + [LOGIT_ROW] + RUNS[2:] if args.with_logit else RUNS
    if args.family == 'bn':  # test-batch statistics only mean something with BatchNorm
        runs = runs[:1] + [NORM_ROW] + runs[1:]
    runs = [r for r in runs if not args.methods or r[1] in args.methods]
    results: dict = {}
    start = time.time()
    for setting in args.settings:
        for _, plain, stag in runs:
            for name in (plain, stag):
                if name is None:
                    continue
                for seed in args.seeds:
                    if any(r['seed'] == seed for r in results.get(setting, {}).get(name, [])):
                        continue  # a run two rows share
                    t0 = time.time()
                    doc = run(name, setting, seed, args)
                    results.setdefault(setting, {}).setdefault(name, []).append(
                        dict(seed=seed, error=error(doc), images_per_s=doc['images_per_s']))
                    print(f'{setting:12s} {name:18s} seed {seed}: error {error(doc):6.2f} '
                          f'({time.time() - t0:.1f} s)', flush=True)
    table = markdown(results, runs, args)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'table.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.out, 'table.json'), 'w') as f:
        json.dump(dict(family=args.family, settings=args.settings, seeds=args.seeds,
                       severity=args.severity,
                       batch1_images=args.batch1_images, minutes=(time.time() - start) / 60,
                       results=results), f, indent=2)
    print(f'written: {osp.join(args.out, "table.md")}, {osp.join(args.out, "table.json")} '
          f'({(time.time() - start) / 60:.1f} min)')


def markdown(results: dict, runs: list, args: argparse.Namespace) -> str:
    """Error per setting (mean over seeds, with the spread) for each method +- STAG."""
    settings = [s for s in args.settings if s in results]

    def cell(setting: str, name: str | None) -> tuple[str, float | None]:
        values = [r['error'] for r in results[setting].get(name, [])] if name else []
        if not values:
            return '', None
        mean = statistics.fmean(values)
        spread = f' ± {statistics.stdev(values):.2f}' if len(values) > 1 else ''
        return f'{mean:.2f}{spread}', mean

    head = ' | '.join(f'{s} | + STAG' for s in settings)
    lines = [f'| method | {head} | mean | + STAG mean |',
             '|---|' + '---:|' * (2 * len(settings) + 2)]
    for label, plain, stag in runs:
        cells, means, stag_means = [], [], []
        for setting in settings:
            text, mean = cell(setting, plain)
            stag_text, stag_mean = cell(setting, stag)
            if stag_mean is not None and mean is not None:
                stag_text += f' ({stag_mean - mean:+.2f})'
            cells += [text, stag_text]
            means.append(mean)
            stag_means.append(stag_mean)
        total = f'{statistics.fmean(means):.2f}' if None not in means else ''
        stag_total = (f'{statistics.fmean(stag_means):.2f}' if stag and None not in stag_means
                      else '')
        lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {total} | {stag_total} |')
    seeds = ', '.join(map(str, args.seeds))
    lines.append('')
    model = {'gn': 'SmallConvNet (GroupNorm)', 'bn': 'SmallConvNet (BatchNorm)',
             'ln': 'SmallConvNet (LayerNorm)', 'vit': 'a small ViT (LayerNorm)'}[
                 getattr(args, 'family', 'gn')]
    lines.append(f'Error (%, lower is better) of {model} on Digits-C (severity {args.severity}), '
                 'mean over '
                 f'the 15 corruptions and over seeds {seeds} (± standard deviation over seeds); '
                 '(+x.xx) is the change STAG makes.')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
