"""``TTAShowHook``: pictures of the first images of every (round, domain) (``--show-dir``)."""
from __future__ import annotations

import os
import os.path as osp
from typing import Sequence

import cv2
import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..evaluation.visualize import (classification_grid, default_palette,
                                    segmentation_panel)

__all__ = ['TTAShowHook']


@HOOKS.register_module()
class TTAShowHook(Hook):
    """Draw the predictions made on the first ``num_images`` images of every (round, domain).

    Segmentation: one PNG per image, input | prediction | ground truth in the data set's
    palette (Cityscapes' for ACDC), at ``<show_dir>/<domain>/<image>_r<round>.png``, so the
    files of one image across the rounds sort together. Classification: one grid per
    (round, domain) with the predicted and true labels, ``<show_dir>/<domain>/grid_r<round>.png``.

    The predictions drawn are the ones that were scored: made before the model adapted on the
    batch. The input drawn is the one the model received (after the pipeline's transforms,
    before normalization), resized to the prediction. Works under ``ContinualTestLoop`` (which
    says the round and domain) and under a stock test loop (round 1, domain ``test``). Only the
    main process draws: with several processes, the first images of its share of each domain.

    Args:
        show_dir (str): Output folder; a relative path is taken inside the run's work dir.
        num_images (int): Images drawn per (round, domain). Defaults to 4.
    """

    priority = 'LOW'

    def __init__(self, show_dir: str, num_images: int = 4) -> None:
        if not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f'TTAShowHook.num_images must be an int >= 1, got {num_images!r}')
        self.show_dir = show_dir
        self.num_images = num_images
        self.out_dir = show_dir
        self._counts: dict[tuple[int, str], int] = {}
        self._grid: dict | None = None

    def before_test(self, runner) -> None:
        self.out_dir = (self.show_dir if osp.isabs(self.show_dir)
                        else osp.join(runner.work_dir, self.show_dir))
        self._counts = {}
        self._grid = None

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict | None = None,
                        outputs: Sequence | None = None) -> None:
        if not is_main_process() or not outputs:
            return
        loop = runner.test_loop
        round_idx = getattr(loop, 'round_idx', 0) or 1
        domain = getattr(loop, 'domain', '') or 'test'
        key = (round_idx, domain)
        if self._grid is not None and self._grid['key'] != key:
            self._write_grid()
        done = self._counts.get(key, 0)
        if done >= self.num_images:
            return
        meta = getattr(getattr(loop.dataloader, 'dataset', None), 'metainfo', None) or {}
        inputs = data_batch.get('inputs', []) if data_batch else []
        batch_size = getattr(loop.dataloader, 'batch_size', None) or len(outputs)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # OpenMMLab loaders give BGR and the preprocessor converts; otherwise it is RGB already
        bgr = bool(getattr(getattr(model, 'data_preprocessor', None), '_channel_conversion',
                           True))
        for i, sample in enumerate(outputs):
            if done >= self.num_images:
                break
            position = batch_idx * batch_size + i  # within this process's share of the domain
            image = self._image(sample, inputs[i] if i < len(inputs) else None, bgr)
            if 'pred_sem_seg' in sample:
                self._draw_segmentation(sample, image, meta, key, position)
            elif 'pred_label' in sample:
                self._add_to_grid(sample, image, meta, key)
            else:
                raise TypeError(f'TTAShowHook draws segmentation (pred_sem_seg) or classification '
                                f'(pred_label) outputs, got {type(sample).__name__} with '
                                f'{sorted(sample.keys())}')
            done += 1
        self._counts[key] = done

    def after_test(self, runner) -> None:
        if self._grid is not None:
            self._write_grid()

    # ------------------------------------------------------------------ drawing
    @staticmethod
    def _image(sample, tensor, bgr: bool) -> np.ndarray | None:
        """The RGB input as the model received it (after the pipeline's own transforms).

        ``bgr``: the loader gives BGR (the model's data preprocessor converts to RGB). Without
        the loaded tensor, the file is read.
        """
        if tensor is None:
            path = sample.metainfo.get('img_path')
            if isinstance(path, str) and osp.isfile(path):
                image = cv2.imread(path, cv2.IMREAD_COLOR)
                return None if image is None else image[..., ::-1]
            return None
        array = tensor.detach().cpu().numpy()
        if array.ndim == 3 and array.shape[0] in (1, 3):
            array = array.transpose(1, 2, 0)
        if array.ndim == 2 or array.shape[2] == 1:
            array = np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
        array = array.astype(np.float32)
        if array.max() <= 1.0:  # a float image in [0, 1]
            array = array * 255
        array = np.clip(array, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(array[..., ::-1] if bgr else array)

    def _draw_segmentation(self, sample, image, meta: dict, key: tuple[int, str],
                           position: int) -> None:
        pred = sample.pred_sem_seg.data.squeeze(0).cpu().numpy()
        gt = (sample.gt_sem_seg.data.squeeze(0).cpu().numpy()
              if 'gt_sem_seg' in sample else None)
        palette = meta.get('palette') or default_palette(
            max(len(meta.get('classes') or ()), int(pred.max()) + 1,
                int(gt[gt != 255].max()) + 1 if gt is not None and (gt != 255).any() else 0))
        if image is None:
            image = np.zeros(pred.shape + (3,), np.uint8)
        round_idx, domain = key
        panel = segmentation_panel(image, pred, gt, palette, title=f'r{round_idx} {domain}')
        path = osp.join(self.out_dir, domain, f'{self._stem(sample, domain, position)}'
                        f'_r{round_idx:02d}.png')
        os.makedirs(osp.dirname(path), exist_ok=True)
        cv2.imwrite(path, panel[..., ::-1])

    @staticmethod
    def _stem(sample, domain: str, position: int) -> str:
        path = sample.metainfo.get('img_path')
        if isinstance(path, str) and path:
            return osp.splitext(osp.basename(path))[0]
        return f'{domain}_{position:05d}'

    def _add_to_grid(self, sample, image, meta: dict, key: tuple[int, str]) -> None:
        if self._grid is None:
            self._grid = dict(key=key, images=[], preds=[], gts=[],
                              classes=meta.get('classes'))
        gt = sample.get('gt_label')
        self._grid['images'].append(image if image is not None
                                    else np.zeros((32, 32, 3), np.uint8))
        self._grid['preds'].append(int(sample.pred_label.view(-1)[0]))
        self._grid['gts'].append(int(gt.view(-1)[0]) if gt is not None and gt.numel() else None)

    def _write_grid(self) -> None:
        grid, self._grid = self._grid, None
        round_idx, domain = grid['key']
        path = osp.join(self.out_dir, domain, f'grid_r{round_idx:02d}.png')
        os.makedirs(osp.dirname(path), exist_ok=True)
        classification_grid(grid['images'], grid['preds'], grid['gts'], grid['classes'], path,
                            title=f'round {round_idx}, {domain}')
