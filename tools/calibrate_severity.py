"""Choose the synthetic conditions' severities from how much a source model loses to them.

On real ACDC the source SegFormer-B5 keeps a different share of its clean Cityscapes score under
each condition (:data:`stag_seg.datasets.generators.ACDC_RETAINED`: the CoTTA paper's source row
over the B5's Cityscapes val mIoU). This tool measures, for a grid of severities, the share the
embedded source model keeps: its mIoU on each condition's *val* scenes, which the stream never
shows, over its mIoU on the very same scenes rendered clean
(:func:`stag_seg.datasets.generators.calibration_tasks`). It then picks, per condition, the
severity whose share is nearest the target. No adaptation runs, and the stream's own images
(the train split) are never rendered or scored.

    python tools/calibrate_severity.py configs/demo/segformer-mit-b0_source.py \
        --severities 0.2 0.4 0.6 0.8 1.0 --num-images 50 --out work_dirs/calibrate

writes ``<out>/calibration.json`` (every measurement and the choice) and prints the
``--severity`` arguments of ``tools/make_synthetic_acdc.py`` that the choice gives.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from stag_seg.datasets.generators import (ACDC_RETAINED, CONDITIONS,  # noqa: E402
                                         calibration_tasks, choose_severity)
from stag_seg.datasets.generators.synthetic_acdc import prepare_out, run_tasks  # noqa: E402
from stag_seg.engine.configuration import build_config  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the source model\'s config (its load_from is used)')
    parser.add_argument('--severities', type=float, nargs='+',
                        default=[0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    parser.add_argument('--num-images', type=int, default=50,
                        help='val images per condition (each severity renders the same scenes)')
    parser.add_argument('--seed', type=int, default=0, help='the generator\'s base seed')
    parser.add_argument('--conditions', nargs='+', default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument('--out', default='work_dirs/calibrate')
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)
    for level in args.severities:
        if not 0.0 < level <= 1.0:
            parser.error(f'--severities: values must be in (0, 1], got {level}')
    if args.num_images < 1:
        parser.error(f'--num-images must be at least 1, got {args.num_images}')
    return args


def render(out: str, args: argparse.Namespace, severity: float | None) -> None:
    """The conditions' val scenes at ``severity`` into ``out``; None renders them clean."""
    prepare_out(out, overwrite=True)
    run_tasks(calibration_tasks(args.conditions, args.num_images, severity, args.seed), out,
              args.workers)


def score(config: str, data_root: str, work_dir: str, conditions: list[str]) -> dict:
    """The source model's mIoU on each condition folder under ``data_root`` (one round)."""
    from stag_seg.suites import run_config
    options = {
        'test_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.split': 'val',
        'test_cfg.domains': conditions,
        'test_cfg.rounds': 1,
        'test_cfg.progress': False,
        'log_level': 'WARNING',
    }
    cfg = build_config(config, (), options)
    cfg.work_dir = work_dir
    results = run_config(cfg)
    if results['method'] != 'Source':
        raise ValueError(f'{config} adapts ({results["method"]}); give the source config')
    return {r['domain']: r['mIoU'] for r in results['records']}


def calibration_markdown(doc: dict) -> str:
    """The table of a calibration document (``calibration.json``): per severity, each
    condition's mIoU and its share of the clean mIoU, the target share, and the choice."""
    conditions = list(doc['clean'])
    lines = ['| severity | ' + ' | '.join(conditions) + ' |',
             '|---:|' + '---:|' * len(conditions),
             '| clean | ' + ' | '.join(f'{doc["clean"][c]:.2f}' for c in conditions) + ' |']
    for level, values in doc['measured'].items():
        cells = []
        for c in conditions:
            cell = f'{values[c]:.2f} ({values[c] / doc["clean"][c]:.3f})'
            chosen = f'{doc["choice"][c]["severity"]:g}' == level
            cells.append(f'**{cell}**' if chosen else cell)
        lines.append(f'| {level} | ' + ' | '.join(cells) + ' |')
    lines.append('| target share | ' + ' | '.join(f'{doc["targets"][c]:.3f}' for c in conditions)
                 + ' |')
    lines += ['', f'mIoU (share of the clean mIoU) of {doc["config"]} on {doc["num_images"]} '
              f'{doc["split"]} scenes per condition; in bold, the severity whose share is '
              'nearest the target (ACDC\'s).']
    return '\n'.join(lines)


def lr_choice_markdown(doc: dict) -> str:
    """The table of the learning-rate choice of CoTTA on the calibrated val scenes
    (``cotta_lr.json``): the mean mIoU per round at each rate, beside the source."""
    def per_round(records: list[dict]) -> list[float]:
        rounds = sorted({r['round'] for r in records})
        return [sum(r['mIoU'] for r in records if r['round'] == k)
                / sum(1 for r in records if r['round'] == k) for k in rounds]

    rounds = max(len(per_round(run['records'])) for run in doc['cotta_by_lr'].values())
    # the source does not adapt: the round it was scored on stands for every round
    source = per_round(doc['source']['records'])
    source += source[-1:] * (rounds - len(source))
    head = ' | '.join(f'r{k}' for k in range(1, rounds + 1))
    lines = [f'| run | {head} | mean |', '|---|' + '---:|' * (rounds + 1),
             '| Source | ' + ' | '.join(f'{v:.2f}' for v in source)
             + f' | {doc["source"]["mean"]:.2f} |']
    for lr, run in doc['cotta_by_lr'].items():
        mean = f'{run["mean"]:.2f}'
        lines.append(f'| CoTTA, lr {lr} | ' + ' | '.join(f'{v:.2f}' for v in per_round(
            run['records'])) + f' | {"**" + mean + "**" if lr == doc["choice"] else mean} |')
    lines += ['', f'{doc["stream"]}; rule: {doc["rule"]}; chosen: {doc["choice"]}.']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    data = osp.join(args.out, 'data')
    render(data, args, None)
    clean = score(args.config, data, osp.join(args.out, 'clean'), args.conditions)
    print('clean: ' + ', '.join(f'{c} {v:.2f}' for c, v in clean.items()), flush=True)
    measured = {}
    for level in sorted(args.severities):
        render(data, args, level)
        measured[level] = score(args.config, data, osp.join(args.out, f'severity_{level:g}'),
                                args.conditions)
        print(f'severity {level:g}: ' + ', '.join(
            f'{c} {v:.2f} ({v / clean[c]:.3f})' for c, v in measured[level].items()), flush=True)
    targets = {c: ACDC_RETAINED[c] for c in args.conditions}
    choice = choose_severity(clean, measured, targets)
    doc = dict(config=args.config, seed=args.seed, num_images=args.num_images, split='val',
               clean=clean, measured={f'{k:g}': v for k, v in measured.items()},
               targets=targets, choice=choice)
    with open(osp.join(args.out, 'calibration.json'), 'w') as f:
        json.dump(doc, f, indent=2)
    with open(osp.join(args.out, 'calibration.md'), 'w') as f:
        f.write(calibration_markdown(doc) + '\n')
    print('choice: --severity ' + ' '.join(f'{c}={v["severity"]:g}' for c, v in choice.items()))
    return doc


if __name__ == '__main__':
    main()
