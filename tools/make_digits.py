"""Write the clean data of the embedded classification benchmark: scikit-learn's digits, 32x32.

The 1,797 handwritten digits that ship inside scikit-learn (8x8 scans from the UCI "Optical
Recognition of Handwritten Digits" set, 16 grey levels) are upsampled bicubically to 32x32,
drawn as dark ink on light paper, and split with a seeded shuffle::

    <out>/train/images.npy   (997, 32, 32, 3) uint8 RGB    source training split
    <out>/train/labels.npy   (997,) int64
    <out>/test/images.npy    (800, 32, 32, 3) uint8 RGB    the test split, corrupted into Digits-C
    <out>/test/labels.npy    (800,) int64
    <out>/meta.json

``NumpyClsDataset`` reads either split; ``tools/make_corrupted.py --npy <out>/test/images.npy
--labels <out>/test/labels.npy --out data/digits_c`` then builds Digits-C (the CIFAR-C layout).
The generator is ``stag_seg.datasets.generators.write_digits``; this is its command line.

    python tools/make_digits.py [--out data/digits] [--num-test 800] [--seed 0]
"""
from __future__ import annotations

import argparse

from stag_seg.datasets.generators import write_digits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='scikit-learn digits as 32x32 RGB arrays')
    parser.add_argument('--out', default='data/digits')
    parser.add_argument('--num-test', type=int, default=800)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    try:
        write_digits(**vars(parse_args(argv)))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


if __name__ == '__main__':
    main()
