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

    python tools/make_digits.py [--out data/digits] [--num-test 800] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp

import cv2
import numpy as np

from stag_seg.compat import require_extra

SIZE = 32


def render(digits: np.ndarray) -> np.ndarray:
    """(N, 8, 8) grey levels 0..16 -> (N, 32, 32, 3) uint8: dark ink on light paper."""
    ink = digits.astype(np.float32) / 16.0
    big = np.stack([cv2.resize(d, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC) for d in ink])
    paper = 255.0 * (1.0 - np.clip(big, 0.0, 1.0))
    return np.repeat(paper.round().astype(np.uint8)[..., None], 3, axis=3)


def main() -> None:
    parser = argparse.ArgumentParser(description='scikit-learn digits as 32x32 RGB arrays')
    parser.add_argument('--out', default='data/digits')
    parser.add_argument('--num-test', type=int, default=800)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    datasets = require_extra('sklearn.datasets', 'digits', 'tools/make_digits.py')
    data = datasets.load_digits()
    num = len(data.target)
    if not 0 < args.num_test < num:
        raise SystemExit(f'--num-test must be in 1..{num - 1}, got {args.num_test}')
    order = np.random.default_rng(args.seed).permutation(num)
    images, labels = render(data.images), data.target.astype(np.int64)
    splits = dict(test=order[:args.num_test], train=order[args.num_test:])
    for split, idx in splits.items():
        os.makedirs(osp.join(args.out, split), exist_ok=True)
        np.save(osp.join(args.out, split, 'images.npy'), images[idx])
        np.save(osp.join(args.out, split, 'labels.npy'), labels[idx])
        print(f'{split}: {len(idx)} images, per class {np.bincount(labels[idx]).tolist()}')
    with open(osp.join(args.out, 'meta.json'), 'w') as f:
        json.dump(dict(source='sklearn.datasets.load_digits', size=SIZE, seed=args.seed,
                       sizes={k: int(len(v)) for k, v in splits.items()}), f, indent=2)
    print(f'written: {args.out}')


if __name__ == '__main__':
    main()
