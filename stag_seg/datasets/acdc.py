"""ACDC (Adverse Conditions Dataset with Correspondences, Sakaridis et al., ICCV 2021) for MMSeg.

Reads the official layout and the embedded synthetic one (``tools/make_synthetic_acdc.py``)::

    data_root/rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png
    data_root/gt/<condition>/<split>/<sequence>/<name>_gt_labelTrainIds.png

Samples come in the order of the CoTTA continual protocol: the conditions in the order given,
and within each condition the images sorted by their path relative to
``rgb_anon/<condition>/<split>`` (sequence folder, then file name), which is what the reference
code (an mmseg 0.x ``CityscapesDataset`` per condition) iterates over.
"""
from __future__ import annotations

import logging
import os.path as osp
from collections.abc import Sequence
from typing import Any

import mmengine.fileio as fileio
from mmengine.logging import print_log

from mmseg.datasets import BaseSegDataset, CityscapesDataset
from mmseg.registry import DATASETS
from .domain_names import ACDC_CONDITIONS

__all__ = ['ACDC_CONDITIONS', 'ACDCDataset']


def _conditions(condition: str | Sequence[str]) -> tuple[str, ...]:
    names = (condition, ) if isinstance(condition, str) else tuple(condition)
    if not names:
        raise ValueError(f'condition must name at least one of {", ".join(ACDC_CONDITIONS)}, '
                         'got an empty sequence')
    for name in names:
        if name not in ACDC_CONDITIONS:
            raise ValueError(f'unknown ACDC condition {name!r}; valid names are '
                             f'{", ".join(ACDC_CONDITIONS)}')
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f'condition lists {", ".join(duplicates)} more than once: {names}; '
                         'repeat rounds with the test loop, not the dataset')
    return names


@DATASETS.register_module()
class ACDCDataset(BaseSegDataset):
    """ACDC with the 19 Cityscapes classes, one or several conditions in the CoTTA order.

    Each data info holds ``img_path``, ``seg_map_path`` (unless labels are missing and allowed),
    ``condition`` and the usual ``label_map``, ``reduce_zero_label`` and ``seg_fields``.

    Args:
        condition (str | Sequence[str]): One or several of ``'fog'``, ``'night'``, ``'rain'``,
            ``'snow'``, in stream order. Defaults to ``('fog', 'night', 'rain', 'snow')``.
        split (str): ``'train'`` (the 400 images per condition of the CoTTA stream), ``'val'``
            or ``'test'``. Defaults to ``'train'``.
        img_dir (str): Image folder under ``data_root``. Defaults to ``'rgb_anon'``.
        ann_dir (str, optional): Label folder under ``data_root``; None loads no labels (needs
            ``allow_missing_labels=True``). Defaults to ``'gt'``.
        img_suffix (str): Image file suffix. Defaults to ``'_rgb_anon.png'``.
        seg_map_suffix (str): Label file suffix. Defaults to ``'_gt_labelTrainIds.png'``.
        allow_missing_labels (bool): Accept images without a label (then none is loaded for
            them, and each miss is counted in the log) instead of raising. Defaults to False.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments (``data_root``,
            ``pipeline``, ``test_mode``, ``lazy_init``, ``indices``, ...).

    Note:
        A failing pipeline (an unreadable or corrupt image, say) raises a ``RuntimeError``
        naming the image and the dataset index instead of mmengine's silent refetch of another
        sample: a TTA stream must not change under the user's feet.
    """
    METAINFO = CityscapesDataset.METAINFO

    def __init__(self,
                 condition: str | Sequence[str] = ACDC_CONDITIONS,
                 split: str = 'train',
                 img_dir: str = 'rgb_anon',
                 ann_dir: str | None = 'gt',
                 img_suffix: str = '_rgb_anon.png',
                 seg_map_suffix: str = '_gt_labelTrainIds.png',
                 allow_missing_labels: bool = False,
                 **kwargs: Any) -> None:
        self.conditions = _conditions(condition)
        if ann_dir is None and not allow_missing_labels:
            raise ValueError('ann_dir=None loads no labels; pass allow_missing_labels=True to '
                             'confirm that is intended')
        if 'data_prefix' in kwargs:
            raise ValueError('ACDCDataset takes img_dir and ann_dir, not data_prefix (got '
                             f'data_prefix={kwargs["data_prefix"]})')
        self.split = split
        self.allow_missing_labels = allow_missing_labels
        self.with_labels = ann_dir is not None
        prefix = dict(img_path=img_dir, seg_map_path=ann_dir if ann_dir is not None else '')
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         data_prefix=prefix, **kwargs)

    def load_data_list(self) -> list[dict]:
        """List the images of every condition, in the CoTTA order, with their labels."""
        data_list, missing = [], 0
        for cond in self.conditions:
            img_dir = osp.join(self.data_prefix['img_path'], cond, self.split)
            if not fileio.isdir(img_dir, backend_args=self.backend_args):
                raise FileNotFoundError(f'ACDC images of condition {cond!r}, split '
                                        f'{self.split!r} not found: {img_dir} is not a directory')
            names = sorted(fileio.list_dir_or_file(img_dir, list_dir=False, suffix=self.img_suffix,
                                                   recursive=True,
                                                   backend_args=self.backend_args))
            if not names:
                raise ValueError(f'ACDC condition {cond!r}: no *{self.img_suffix} image under '
                                 f'{img_dir}')
            ann_dir = osp.join(self.data_prefix['seg_map_path'], cond, self.split)
            if (self.with_labels and not self.allow_missing_labels
                    and not fileio.isdir(ann_dir, backend_args=self.backend_args)):
                raise FileNotFoundError(f'ACDC labels of condition {cond!r}, split '
                                        f'{self.split!r} not found: {ann_dir} is not a '
                                        'directory (pass allow_missing_labels=True to go on '
                                        'without labels)')
            for name in names:
                info = self._data_info(cond, img_dir, ann_dir, name)
                missing += self.with_labels and 'seg_map_path' not in info
                data_list.append(info)
        if missing:
            print_log(f'ACDCDataset: {missing} of {len(data_list)} images have no label under '
                      f'{self.data_prefix["seg_map_path"]}; they are loaded without one '
                      '(allow_missing_labels=True)', logger='current', level=logging.WARNING)
        return data_list

    def _data_info(self, cond: str, img_dir: str, ann_dir: str, name: str) -> dict:
        info = dict(img_path=osp.join(img_dir, name), condition=cond, label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label, seg_fields=[])
        if not self.with_labels:
            return info
        seg_map = osp.join(ann_dir, name[:-len(self.img_suffix)] + self.seg_map_suffix)
        if fileio.isfile(seg_map, backend_args=self.backend_args):
            info['seg_map_path'] = seg_map
        elif not self.allow_missing_labels:
            raise FileNotFoundError(f'image {info["img_path"]} has no label: expected '
                                    f'{seg_map} (pass allow_missing_labels=True to load images '
                                    'without labels)')
        return info

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on sample ``idx``; a failure names the image and the index."""
        data_info = self.get_data_info(idx)
        try:
            data = self.pipeline(data_info)
        except Exception as exc:
            raise RuntimeError(f'ACDCDataset: could not load sample {idx} '
                               f'({data_info["img_path"]}): {type(exc).__name__}: {exc}') from exc
        if data is None:
            raise RuntimeError(f'ACDCDataset: the pipeline dropped sample {idx} '
                               f'({data_info["img_path"]}); ACDC streams skip nothing')
        return data
