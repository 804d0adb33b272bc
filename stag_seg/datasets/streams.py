"""Orders of a test stream: continual, mixed domains, online label shift; all seeded.

The wild settings of the TTA literature change *which* samples arrive when, not the samples:

- ``'sequential'``: the data set's own order (the continual protocol, per domain);
- ``'mixed'``: one shuffled stream over all domains (the "mixed distribution shifts" of SAR);
- ``'python_shuffle'``: a shuffle by Python's ``random`` module seeded with ``seed``, the order
  mariodoebler/test-time-adaptation gives each CIFAR-C domain (``random.seed(RNG_SEED)``, then
  ``random.shuffle`` of the domain's samples), so a stream there and here is the same, image
  for image;
- ``'class_sorted'``: samples grouped by class, classes in a seeded order (the most severe
  online label shift);
- ``'dirichlet'``: the non-i.i.d. order of NOTE (Gong et al., NeurIPS 2022): the stream is cut
  into ``num_slots`` time slots; each class's samples are shared over the slots in proportions
  drawn from ``Dirichlet(alpha)``; slots follow one another, shuffled inside. A small ``alpha``
  (0.1, 0.01) concentrates each class in few slots; ``alpha -> inf`` tends to i.i.d.

:class:`StreamDataset` applies an order to one or several data sets, for a domain of
``ContinualTestLoop``; batch size 1 is the loader's ``batch_size=1``.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

__all__ = ['ORDERS', 'StreamDataset', 'stream_order']

ORDERS = ('sequential', 'mixed', 'python_shuffle', 'class_sorted', 'dirichlet')


def stream_order(num: int,
                 order: str = 'sequential',
                 labels: Sequence[int] | None = None,
                 num_classes: int | None = None,
                 seed: int = 0,
                 alpha: float = 0.1,
                 num_slots: int | None = None) -> list[int]:
    """Indices ``0..num-1`` in the stream order ``order`` (deterministic given ``seed``).

    Args:
        num (int): Samples in the stream.
        order (str): One of :data:`ORDERS`.
        labels (Sequence[int], optional): Class of each sample; needed by the label-shift
            orders (``'class_sorted'``, ``'dirichlet'``).
        num_classes (int, optional): Classes; labels must lie in ``[0, num_classes)``.
        seed (int): Seed of every random choice. Defaults to 0.
        alpha (float): Dirichlet concentration. Defaults to 0.1.
        num_slots (int, optional): Time slots of the Dirichlet order; defaults to
            ``max(num_classes, num // 10, 1)``.
    """
    if order not in ORDERS:
        raise ValueError(f'unknown stream order {order!r}; choose one of {ORDERS}')
    rng = np.random.default_rng(seed)
    if order == 'sequential':
        return list(range(num))
    if order == 'mixed':
        return [int(i) for i in rng.permutation(num)]
    if order == 'python_shuffle':
        indices = list(range(num))
        random.Random(seed).shuffle(indices)
        return indices
    if labels is None:
        raise ValueError(f'the {order!r} order needs the labels of the samples')
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (num, ):
        raise ValueError(f'{labels.shape[0] if labels.ndim else 0} labels for {num} samples')
    num_classes = int(num_classes if num_classes is not None else labels.max() + 1)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(f'labels {sorted(set(bad.tolist()))[:10]} outside the '
                         f'{num_classes} classes')
    classes = rng.permutation(num_classes)
    if order == 'class_sorted':
        rank = np.empty(num_classes, dtype=np.int64)
        rank[classes] = np.arange(num_classes)
        return [int(i) for i in np.argsort(rank[labels], kind='stable')]
    if alpha <= 0:
        raise ValueError(f'the Dirichlet concentration alpha must be > 0, got {alpha}')
    slots = num_slots or max(num_classes, num // 10, 1)
    buckets: list[list[int]] = [[] for _ in range(slots)]
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        if not members.size:
            continue
        shares = rng.dirichlet(np.full(slots, alpha))
        cuts = (np.cumsum(shares)[:-1] * members.size).round().astype(int)
        for slot, part in enumerate(np.split(members, cuts)):
            buckets[slot].extend(int(i) for i in part)
    out: list[int] = []
    for bucket in buckets:
        out.extend(int(i) for i in rng.permutation(bucket))
    return out


def _expand(datasets: Sequence, vary: dict) -> list[dict]:
    """One copy of the single data set config in ``datasets`` per value in ``vary``."""
    if len(datasets) != 1 or not isinstance(datasets[0], dict):
        raise ValueError('StreamDataset.vary needs exactly one data set config in datasets, '
                         f'got {len(datasets)} data sets')
    if len(vary) != 1:
        raise ValueError(f'StreamDataset.vary takes one key, got {sorted(vary)}')
    (key, values), = vary.items()
    if isinstance(values, str) or not values:
        raise ValueError(f'StreamDataset.vary[{key!r}] must be a non-empty list of values, got '
                         f'{values!r}')
    return [dict(datasets[0], **{key: value}) for value in values]


def _labels(dataset: Dataset) -> list[int]:
    if hasattr(dataset, 'get_gt_labels'):
        return [int(v) for v in dataset.get_gt_labels()]
    if hasattr(dataset, 'get_data_info'):
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        if all('gt_label' in info for info in infos):
            return [int(info['gt_label']) for info in infos]
    raise ValueError(f'{type(dataset).__name__} gives no class labels (get_gt_labels or '
                     "'gt_label' per sample): a label-shift order cannot be built")


@DATASETS.register_module()
class StreamDataset(Dataset):
    """One or several data sets read in a stream order (see :func:`stream_order`).

    Args:
        datasets (Sequence[dict | Dataset]): The data sets (configs are built); with several,
            they are concatenated first (``'mixed'`` then interleaves them).
        order (str): A stream order. Defaults to ``'sequential'``.
        seed (int): Its seed. Defaults to 0.
        alpha (float): Dirichlet concentration. Defaults to 0.1.
        num_slots (int, optional): Time slots of the Dirichlet order.
        vary (dict, optional): ``{key: [v1, v2, ...]}`` with a single data set config in
            ``datasets``: one data set per value, the config with ``key=value``, in that order
            (``dict(corruption=[...15 names])`` mixes all corruptions). Defaults to None.
    """

    def __init__(self,
                 datasets: Sequence[dict | Dataset],
                 order: str = 'sequential',
                 seed: int = 0,
                 alpha: float = 0.1,
                 num_slots: int | None = None,
                 vary: dict | None = None) -> None:
        if not datasets:
            raise ValueError('StreamDataset needs at least one data set')
        if vary is not None:
            datasets = _expand(datasets, vary)
        self.datasets = [DATASETS.build(d) if isinstance(d, dict) else d for d in datasets]
        self.sizes = [len(d) for d in self.datasets]
        self.offsets = np.cumsum([0] + self.sizes)
        num = int(self.offsets[-1])
        if num == 0:
            raise ValueError('StreamDataset: the data sets are empty')
        labels = None
        if order in ('class_sorted', 'dirichlet'):
            labels = [label for d in self.datasets for label in _labels(d)]
        meta = getattr(self.datasets[0], 'metainfo', {}) or {}
        num_classes = len(meta['classes']) if meta.get('classes') else None
        self.order = stream_order(num, order, labels, num_classes, seed, alpha, num_slots)
        self.metainfo = meta
        #: which data set each position of the stream comes from (for mixed streams)
        self.sources = [int(np.searchsorted(self.offsets, i, side='right') - 1)
                        for i in self.order]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, idx: int):
        index = self.order[idx]
        source = self.sources[idx]
        return self.datasets[source][index - int(self.offsets[source])]

    def get_data_info(self, idx: int) -> dict:
        index = self.order[idx]
        source = self.sources[idx]
        dataset = self.datasets[source]
        if not isinstance(dataset, BaseDataset):
            raise TypeError(f'{type(dataset).__name__} has no get_data_info')
        return dataset.get_data_info(index - int(self.offsets[source]))
