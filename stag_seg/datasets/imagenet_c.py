"""Loaders of the corruption benchmarks: ImageNet-C (folders) and CIFAR-10-C / CIFAR-100-C (.npy).

Layouts (Hendrycks & Dietterich, ICLR 2019):

- ImageNet-C: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``, severities 1-5, the class
  index being the wnid's rank among the sorted wnids (ImageNet's own order);
- CIFAR-10-C / CIFAR-100-C: ``<root>/<corruption>.npy`` holding 50,000 images (uint8,
  N x 32 x 32 x 3, RGB), severities 1 to 5 one after another (10,000 each), and
  ``<root>/labels.npy``.

:class:`NumpyClsDataset` reads a clean split kept as two arrays (``images.npy``, ``labels.npy``),
the source data of the embedded Digits-C benchmark.

``num_images`` keeps the first N images of the domain in a seeded shuffle of it (``seed``), the
way the 5,000-image ImageNet-C benchmarks subsample; ``None`` keeps all, in file order. The names
of the 15 corruptions are :data:`~stag_seg.datasets.domain_names.CORRUPTIONS`.
"""
from __future__ import annotations

import os
import os.path as osp

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .domain_names import IMAGE_SUFFIXES

__all__ = ['CIFARCDataset', 'ImageNetCDataset', 'NumpyClsDataset']


def _check(corruption: str, severity: int) -> None:
    if not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f'severity must be an int in 1..5, got {severity!r}')
    if not corruption or '/' in corruption:
        raise ValueError(f'bad corruption name {corruption!r}')


def _subset(num: int, num_images: int | None, seed: int) -> np.ndarray:
    if num_images is None:
        return np.arange(num)
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1 or None, got {num_images}')
    return np.sort(np.random.default_rng(seed).permutation(num)[:num_images])


@DATASETS.register_module()
class ImageNetCDataset(BaseDataset):
    """One (corruption, severity) domain of ImageNet-C (or any -C folder tree, same layout).

    Args:
        data_root (str): The folder holding the corruption folders.
        corruption (str): e.g. ``'gaussian_noise'``. severity (int): 1..5.
        num_images (int, optional): Keep N images (seeded subset). seed (int): Its seed.
        **kwargs: ``pipeline``, ``test_mode``, ... of mmpretrain's ``BaseDataset``.
    """

    def __init__(self, data_root: str, corruption: str, severity: int = 5,
                 num_images: int | None = None, seed: int = 0, **kwargs) -> None:
        _check(corruption, severity)
        self.corruption, self.severity = corruption, severity
        self.num_images, self.seed = num_images, seed
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        folder = osp.join(self.data_root, self.corruption, str(self.severity))
        if not osp.isdir(osp.join(self.data_root, self.corruption)):
            raise FileNotFoundError(f'ImageNet-C corruption {self.corruption!r} not found: '
                                    f'{osp.join(self.data_root, self.corruption)} is not a '
                                    'directory')
        if not osp.isdir(folder):
            raise FileNotFoundError(f'ImageNet-C {self.corruption!r} has no severity '
                                    f'{self.severity}: {folder} is not a directory')
        wnids = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
        if not wnids:
            raise ValueError(f'{folder} holds no class folders')
        samples = []
        for label, wnid in enumerate(wnids):
            for name in sorted(os.listdir(osp.join(folder, wnid))):
                if name.lower().endswith(IMAGE_SUFFIXES):
                    samples.append(dict(img_path=osp.join(folder, wnid, name), gt_label=label))
        if not samples:
            raise ValueError(f'{folder} holds no images')
        if self._metainfo.get('classes') is None:
            self._metainfo['classes'] = tuple(wnids)
        elif len(self._metainfo['classes']) != len(wnids):
            raise ValueError(f'{folder} has {len(wnids)} class folders for '
                             f'{len(self._metainfo["classes"])} classes')
        return [samples[i] for i in _subset(len(samples), self.num_images, self.seed)]


@DATASETS.register_module()
class CIFARCDataset(BaseDataset):
    """One (corruption, severity) domain of CIFAR-10-C or CIFAR-100-C (``.npy`` layout).

    Args:
        data_root (str): The folder holding ``<corruption>.npy`` and ``labels.npy``.
        corruption (str): e.g. ``'gaussian_noise'``. severity (int): 1..5.
        num_classes (int): 10 or 100; labels must lie below it. Defaults to 10.
        num_images (int, optional): Keep N images (seeded subset). seed (int): Its seed.
        **kwargs: ``pipeline``, ``test_mode``, ... of mmpretrain's ``BaseDataset``.
    """

    def __init__(self, data_root: str, corruption: str, severity: int = 5,
                 num_classes: int = 10, num_images: int | None = None, seed: int = 0,
                 **kwargs) -> None:
        _check(corruption, severity)
        self.corruption, self.severity, self.num_classes = corruption, severity, num_classes
        self.num_images, self.seed = num_images, seed
        kwargs.setdefault('metainfo', dict(classes=tuple(str(i) for i in range(num_classes))))
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        images_path = osp.join(self.data_root, f'{self.corruption}.npy')
        labels_path = osp.join(self.data_root, 'labels.npy')
        for path in (images_path, labels_path):
            if not osp.isfile(path):
                raise FileNotFoundError(f'CIFAR-C file not found: {path}')
        images = np.load(images_path, mmap_mode='r')
        labels = np.load(labels_path)
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) % 5:
            raise ValueError(f'{images_path}: expected 5 severities of N x 32 x 32 x 3 images, '
                             f'got {images.shape}')
        per = len(images) // 5
        if len(labels) not in (per, len(images)):
            raise ValueError(f'{labels_path}: {len(labels)} labels for {per} images per '
                             'severity')
        start = (self.severity - 1) * per
        labels = labels[start:start + per] if len(labels) == len(images) else labels
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise ValueError(f'{labels_path}: labels {sorted(set(bad.tolist()))[:10]} outside '
                             f'the {self.num_classes} classes')
        keep = _subset(per, self.num_images, self.seed)
        return [dict(img=np.ascontiguousarray(images[start + i]), gt_label=int(labels[i]))
                for i in keep]


@DATASETS.register_module()
class NumpyClsDataset(BaseDataset):
    """Images and labels kept as two ``.npy`` arrays (N x H x W x 3 uint8 RGB, and N ints).

    Args:
        data_root (str): The folder holding the arrays.
        images (str): File name of the images. Defaults to ``'images.npy'``.
        labels (str): File name of the labels. Defaults to ``'labels.npy'``.
        num_classes (int): Labels must lie below it. Defaults to 10.
        **kwargs: ``pipeline``, ``test_mode``, ... of mmpretrain's ``BaseDataset``.
    """

    def __init__(self, data_root: str, images: str = 'images.npy', labels: str = 'labels.npy',
                 num_classes: int = 10, **kwargs) -> None:
        self.images_file, self.labels_file, self.num_classes = images, labels, num_classes
        kwargs.setdefault('metainfo', dict(classes=tuple(str(i) for i in range(num_classes))))
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        images_path = osp.join(self.data_root, self.images_file)
        labels_path = osp.join(self.data_root, self.labels_file)
        for path in (images_path, labels_path):
            if not osp.isfile(path):
                raise FileNotFoundError(f'array data set file not found: {path}')
        images, labels = np.load(images_path), np.load(labels_path)
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(f'{images_path}: expected N x H x W x 3 uint8 images, got '
                             f'{images.shape} {images.dtype}')
        if labels.shape != (len(images), ):
            raise ValueError(f'{labels_path}: {labels.shape} labels for {len(images)} images')
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise ValueError(f'{labels_path}: labels {sorted(set(bad.tolist()))[:10]} outside '
                             f'the {self.num_classes} classes')
        return [dict(img=np.ascontiguousarray(img), gt_label=int(label))
                for img, label in zip(images, labels)]
