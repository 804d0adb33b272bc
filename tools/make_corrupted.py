"""Build the -C version of a data set: its images under 15 corruptions x 5 severities.

Two modes, each writing the layout that its loader in ``stag_seg.datasets.imagenet_c`` reads::

    --folder ROOT        ROOT/<class>/<name>.{JPEG,jpg,png}  (an ImageNet-style folder tree)
        -> OUT/<corruption>/<severity>/<class>/<name>     ImageNet-C, ``ImageNetCDataset``

    --npy IMAGES.npy --labels LABELS.npy     N x H x W x 3 uint8 RGB images, N labels
        -> OUT/<corruption>.npy   5N x H x W x 3, severities 1 to 5 one after another
           OUT/labels.npy         the N labels 5 times        CIFAR-10-C, ``CIFARCDataset``

The corruptions are ``stag_seg.datasets.generators.corrupt``; their parameters follow the image
size (``--preset auto``: the CIFAR table up to a 64 px short side, else the ImageNet one, scaled
to the image). ``--table published`` (default) is the reference scripts' parameter table;
``--table monotone`` changes seven entries (see ``stag_seg.datasets.generators.corruptions``).
Frost blends the reference's photographs when ``imagecorruptions-imaug`` is installed
(``--frost auto``), else a procedural texture. ``OUT/corruption_meta.json`` records the table,
the preset, the frost source and the seed. ImageNet-C corrupted the 224x224 centre crops of the
validation images (resized to 256 first): crop before running this if the benchmark should
match. Images keep their name
and format: PNG stays lossless, JPEG is written at ``--jpeg-quality`` without chroma
subsampling (ImageNet-C itself was saved at quality 85). ``CIFARCDataset`` reads 32x32 images.

Every image has its own random generator, seeded from ``--seed``, the corruption, the severity
and the image (its index in array mode, its path under ROOT in folder mode), so the output does
not depend on ``--workers`` nor on which corruptions and severities a run makes: later runs can
add corruptions to the same ``--out``. The generator is
``stag_seg.datasets.generators.write_corrupted_set``; this is its command line.

Examples::

    python tools/make_corrupted.py --folder data/imagenet/val_224 --out data/imagenet_c_own \\
        --corruptions gaussian_noise fog --severities 5 --workers 2
    python tools/make_corrupted.py --npy data/cifar10/test_images.npy \\
        --labels data/cifar10/test_labels.npy --out data/cifar10_c_own --workers 2
"""
from __future__ import annotations

import argparse
import sys

from stag_seg.datasets import CORRUPTIONS
from stag_seg.datasets.generators import (CORRUPTION_TABLES, FROST_SOURCES, SEVERITIES,
                                          check_options, write_corrupted_set)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Corrupt a data set with the ImageNet-C corruptions (ImageNet-C or CIFAR-C '
        'layout).')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--folder', metavar='ROOT', help='class folders of images')
    source.add_argument('--npy', metavar='IMAGES.npy', help='N x H x W x 3 uint8 RGB images')
    parser.add_argument('--labels', metavar='LABELS.npy', help='N labels (with --npy)')
    parser.add_argument('--out', required=True, help='output root')
    parser.add_argument('--corruptions', nargs='+', default=list(CORRUPTIONS),
                        choices=CORRUPTIONS, metavar='NAME',
                        help=f'default: all 15 ({", ".join(CORRUPTIONS)})')
    parser.add_argument('--severities', nargs='+', type=int, default=list(SEVERITIES),
                        choices=SEVERITIES, metavar='S', help='in 1..5, default: all')
    parser.add_argument('--seed', type=int, default=0, help='base seed of every image')
    parser.add_argument('--preset', default='auto', choices=('auto', 'imagenet', 'cifar'),
                        help='parameter table (default: by image size)')
    parser.add_argument('--table', default='published', choices=CORRUPTION_TABLES,
                        help="parameter table: the reference scripts' (published, default) or "
                        'with seven entries changed so that distortion grows with severity '
                        '(monotone)')
    parser.add_argument('--frost', default='auto', choices=FROST_SOURCES,
                        help='frost: the reference photographs of imagecorruptions-imaug when '
                        'installed, else a procedural texture (auto, default), or either one')
    parser.add_argument('--workers', type=int, default=1, help='processes (default: 1)')
    parser.add_argument('--jpeg-quality', type=int, default=95,
                        help='quality of the JPEG files written in folder mode (default: 95)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace outputs an earlier run wrote for these corruptions and '
                        'severities')
    args = parser.parse_args(argv)
    try:
        check_options(args.folder, args.npy, args.labels, args.corruptions, args.severities,
                      args.seed, args.preset, args.table, args.workers, args.jpeg_quality)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> dict:
    return write_corrupted_set(**vars(parse_args(argv)))


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError, ModuleNotFoundError) as exc:  # bad files, missing frost photos
        sys.exit(f'error: {exc}')
