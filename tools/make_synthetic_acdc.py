"""Generate the embedded Cityscapes→ACDC-like benchmark: clean source scenes, 4 weather targets.

Writes, under ``--out`` (see data/README.md for the layouts)::

    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png     clean source images
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png  their labels
    rgb_anon/<cond>/<split>/<GOPRxxxx>/<GOPRxxxx>_frame_<nnnnnn>_rgb_anon.png   target images
    gt/<cond>/<split>/<GOPRxxxx>/<GOPRxxxx>_frame_<nnnnnn>_gt_labelTrainIds.png  their labels
    meta.json                                                                 arguments, counts

mmseg's ``CityscapesDataset`` reads the source split as it is; ``stag_seg``'s ``ACDCDataset``
reads the targets. Every image has its own seed derived from ``--seed``, its domain and its
index, so the output does not depend on ``--workers``. The generator is
``stag_seg.datasets.generators.write_synthetic_acdc``; this is its command line.

Example::

    python tools/make_synthetic_acdc.py --out data/synthetic_acdc --workers 2
"""
from __future__ import annotations

import argparse
import os
import sys

from stag_seg.datasets.generators import (CONDITIONS, DEFAULT_SEVERITY, parse_severity,
                                          write_synthetic_acdc)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate synthetic Cityscapes-like source data and ACDC-like targets.')
    parser.add_argument('--out', default='data/synthetic_acdc', help='output root')
    parser.add_argument('--seed', type=int, default=0, help='base seed of every image')
    parser.add_argument('--num-source-train', type=int, default=500)
    parser.add_argument('--num-source-val', type=int, default=100)
    parser.add_argument('--num-target', type=int, default=50,
                        help='target images per condition in the train split (the stream)')
    parser.add_argument('--num-target-val', type=int, default=0,
                        help='target images per condition in the val split')
    parser.add_argument('--frames-per-sequence', type=int, default=10,
                        help='target images per GOPRxxxx folder')
    parser.add_argument('--conditions', nargs='+', default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument(
        '--severity', nargs='+', metavar='[COND=]VALUE',
        help='severity in (0, 1]: one value for all conditions, or cond=value pairs; '
        f'defaults: {DEFAULT_SEVERITY}')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument('--overwrite', action='store_true',
                        help='delete what an earlier run generated under --out first')
    args = parser.parse_args(argv)
    for name in ('num_source_train', 'num_source_val', 'num_target', 'num_target_val'):
        if getattr(args, name) < 0:
            parser.error(f'--{name.replace("_", "-")} must be >= 0, got {getattr(args, name)}')
    if args.frames_per_sequence < 1:
        parser.error(f'--frames-per-sequence must be >= 1, got {args.frames_per_sequence}')
    if args.width < 16 or args.height < 16:
        parser.error(f'--width and --height must be >= 16, got {args.width}x{args.height}')
    try:
        args.severity = parse_severity(args.severity, args.conditions)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> dict:
    return write_synthetic_acdc(**vars(parse_args(argv)))


if __name__ == '__main__':
    try:
        main()
    except (FileExistsError, OSError) as exc:
        sys.exit(f'error: {exc}')
