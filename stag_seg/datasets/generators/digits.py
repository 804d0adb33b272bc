"""The clean data of the embedded classification benchmark: scikit-learn's digits, 32x32.

The 1,797 handwritten digits that ship inside scikit-learn (8x8 scans from the UCI "Optical
Recognition of Handwritten Digits" set, 16 grey levels) are upsampled bicubically to 32x32,
drawn as dark ink on light paper (:func:`render_digits`), and split with a seeded shuffle by
:func:`write_digits`::

    <out>/train/images.npy   (997, 32, 32, 3) uint8 RGB    source training split
    <out>/train/labels.npy   (997,) int64
    <out>/test/images.npy    (800, 32, 32, 3) uint8 RGB    the test split, corrupted into Digits-C
    <out>/test/labels.npy    (800,) int64
    <out>/meta.json

``NumpyClsDataset`` reads either split; :func:`~stag_seg.datasets.generators.write_corrupted_set`
with ``npy=<out>/test/images.npy, labels=<out>/test/labels.npy`` then builds Digits-C (the
CIFAR-C layout). ``tools/make_digits.py`` is its command line; the errors name its options.
"""
from __future__ import annotations

import json
import os
import os.path as osp

import cv2
import numpy as np

from ...compat import require_extra

__all__ = ['DIGIT_SIZE', 'render_digits', 'write_digits']

#: Side of the rendered digits, in pixels.
DIGIT_SIZE = 32


def render_digits(digits: np.ndarray) -> np.ndarray:
    """(N, 8, 8) grey levels 0..16 -> (N, 32, 32, 3) uint8: dark ink on light paper."""
    ink = digits.astype(np.float32) / 16.0
    big = np.stack([cv2.resize(d, (DIGIT_SIZE, DIGIT_SIZE), interpolation=cv2.INTER_CUBIC)
                    for d in ink])
    paper = 255.0 * (1.0 - np.clip(big, 0.0, 1.0))
    return np.repeat(paper.round().astype(np.uint8)[..., None], 3, axis=3)


def write_digits(out: str, num_test: int = 800, seed: int = 0) -> None:
    """Write the train and test splits of the digits under ``out``, printing their sizes.

    Args:
        out (str): Output root.
        num_test (int): Digits in the test split, the rest train. Defaults to 800.
        seed (int): Seed of the shuffle that splits them. Defaults to 0.

    Raises:
        ModuleNotFoundError: scikit-learn is not installed (the ``digits`` extra).
        ValueError: ``num_test`` leaves one of the splits empty.
    """
    datasets = require_extra('sklearn.datasets', 'digits', 'tools/make_digits.py')
    data = datasets.load_digits()
    num = len(data.target)
    if not 0 < num_test < num:
        raise ValueError(f'--num-test must be in 1..{num - 1}, got {num_test}')
    order = np.random.default_rng(seed).permutation(num)
    images, labels = render_digits(data.images), data.target.astype(np.int64)
    splits = dict(test=order[:num_test], train=order[num_test:])
    for split, idx in splits.items():
        os.makedirs(osp.join(out, split), exist_ok=True)
        np.save(osp.join(out, split, 'images.npy'), images[idx])
        np.save(osp.join(out, split, 'labels.npy'), labels[idx])
        print(f'{split}: {len(idx)} images, per class {np.bincount(labels[idx]).tolist()}')
    with open(osp.join(out, 'meta.json'), 'w') as f:
        json.dump(dict(source='sklearn.datasets.load_digits', size=DIGIT_SIZE, seed=seed,
                       sizes={k: int(len(v)) for k, v in splits.items()}), f, indent=2)
    print(f'written: {out}')
