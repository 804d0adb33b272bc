"""CoTTA's multi-view teacher: a model's probabilities over scale x flip views of the batch.

Shared by CoTTA, DAT and SVDP, whose reference code runs every view through the teacher one at
a time (``aug_test`` of CoTTA's segmentation tarball): 7 scales x flip, 14 views by default,
ordered scale by scale, each unflipped then flipped (view ``2 s + f``; view 4 is scale 1.0
unflipped, the network's input).

Where the views come from (``source``):

- ``'original'``, the reference's: each view is resized from the original image (bilinear,
  ``mmcv.imrescale`` to ``scale`` times the input size, as the reference's multi-scale test
  pipeline does), flipped, normalised by the model's data preprocessor and run through the
  model's own inference (slide inference with the config's crop and stride, or whole); flipped
  views are flipped back and the probabilities live at the original size.
- ``'input'``: the normalised network input is interpolated, each view runs whole, and the
  probabilities live at the input size (a faster deviation; the embedded benchmark's).

The memory ceiling, ``views_per_forward``: the inputs of one size that go through the network
in one forward. A view and its flipped twin have the same size, and under slide inference every
crop of both has the crop's size, so at most ``views_per_forward`` of them are batched (at scale
2.0 on ACDC: 6 crops per view, 12 per scale). 1 is the reference's loop, one crop at a time, and
gives its floats exactly; a larger batch gives the same predictions with float noise (about 1e-6
in the probabilities). With 'input' views, 2 runs a view and its flip as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..structures import StepContext

__all__ = ['DEFAULT_SCALES', 'VIEW_SOURCES', 'ScaleFlipViews', 'View', 'ViewProbs',
           'inference_probs', 'original_view', 'slide_boxes']

DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
VIEW_SOURCES = ('input', 'original')

#: ``transform(view, inputs)``: what a view's normalised input becomes before the model sees it
#: (SVDP adds its prompt); ``inputs`` is (N, 3, h, w).
Transform = Callable[['View', Tensor], Tensor]


@dataclass(frozen=True)
class View:
    """One view: its index in the reference's order, its scale and whether it is flipped."""
    index: int
    scale: float
    flip: bool


@dataclass
class ViewProbs:
    """What :meth:`ScaleFlipViews.run` returns, each (N, C, H, W) probabilities at the target
    size, flipped views flipped back.

    Attributes:
        average (Tensor | None): The mean over the views that ran (None when not asked).
        views (dict[int, Tensor]): The probabilities of the views asked for by index.
    """
    average: Tensor | None
    views: dict[int, Tensor]


def original_view(image: np.ndarray, scale: float, flip: bool,
                  input_hw: tuple[int, int], keep_ratio: bool = True) -> Tensor:
    """One view of ``image`` ((H, W, 3) uint8, as loaded) as the reference's multi-scale test
    pipeline makes it: rescaled (bilinear, keeping the aspect ratio) to at most ``scale`` times
    the input size ``input_hw`` (with ``keep_ratio=False``: resized to exactly
    ``int(scale * h) x int(scale * w)``, as Hybrid-TTA's pipeline does), flipped when ``flip``;
    (3, h, w) uint8."""
    height, width = input_hw
    resize = mmcv.imrescale if keep_ratio else mmcv.imresize
    view = resize(image, (int(width * scale), int(height * scale)), interpolation='bilinear')
    if flip:
        view = view[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1)))


def inference_probs(model: nn.Module, ctx: StepContext, size: tuple[int, int]) -> Tensor:
    """``model``'s own inference (MMSeg's ``inference``: slide or whole, as its ``test_cfg``
    says) of each image of the batch as it is, as probabilities resized (bilinear) to ``size``:
    the reference's single-view ``simple_test``; (N, C, *size)."""
    out = []
    for i in range(ctx.inputs.size(0)):
        x = ctx.inputs[i:i + 1]
        shape = tuple(x.shape[2:])
        meta = dict(img_shape=shape, ori_shape=tuple(size), pad_shape=shape,
                    padding_size=[0, 0, 0, 0])
        logits = model.inference(x, [meta])
        out.append(F.interpolate(logits, size=size, mode='bilinear',
                                 align_corners=bool(getattr(model, 'align_corners', False))
                                 ).softmax(1))
    return torch.cat(out)


def slide_boxes(height: int, width: int, test_cfg: dict | None) -> list[tuple[int, int, int, int]]:
    """``(y1, y2, x1, x2)`` of the windows MMSeg's ``slide_inference`` cuts from a ``height`` x
    ``width`` input, in its order; one window, the whole input, for ``mode='whole'``."""
    test_cfg = test_cfg or {}
    if test_cfg.get('mode', 'whole') != 'slide':
        return [(0, height, 0, width)]
    h_stride, w_stride = test_cfg['stride']
    h_crop, w_crop = test_cfg['crop_size']
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    boxes = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, height)
            x2 = min(w_idx * w_stride + w_crop, width)
            boxes.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return boxes


class ScaleFlipViews:
    """The scale x flip views of a batch and a model's probabilities over them.

    Args:
        scales (Sequence[float]): The views' scales. Defaults to 0.5 ... 2.0.
        flip (bool): Add each scale's horizontally flipped view. Defaults to True.
        source (str): ``'input'`` or ``'original'`` (see the module docstring). Defaults to
            ``'input'``.
        views_per_forward (int, optional): The memory ceiling: inputs of one size per forward.
            Defaults to None: 1 with ``'original'`` views (the reference's loop and its floats),
            2 with ``'input'`` views (a view and its flip in one batch).
        keep_ratio (bool): ``'original'`` views keep the aspect ratio (CoTTA's pipeline); False
            resizes each to exactly the scaled input size (Hybrid-TTA's). Defaults to True.
    """

    def __init__(self,
                 scales: Sequence[float] = DEFAULT_SCALES,
                 flip: bool = True,
                 source: str = 'input',
                 views_per_forward: int | None = None,
                 owner: str = 'views',
                 keep_ratio: bool = True) -> None:
        if not scales or min(scales) <= 0:
            raise ValueError(f'{owner}.scales must be positive numbers, got {scales}')
        if source not in VIEW_SOURCES:
            raise ValueError(f'{owner}.view_source must be one of {VIEW_SOURCES}, got '
                             f'{source!r}')
        if views_per_forward is None:
            views_per_forward = 1 if source == 'original' else 2
        if not isinstance(views_per_forward, int) or views_per_forward < 1:
            raise ValueError(f'{owner}.views_per_forward must be an int >= 1, got '
                             f'{views_per_forward!r}')
        self.scales = tuple(scales)
        self.flip = flip
        self.source = source
        self.views_per_forward = views_per_forward
        self.owner = owner
        self.keep_ratio = keep_ratio

    def __len__(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)

    @property
    def all(self) -> list[View]:
        """Every view, in the reference's order."""
        flips = (False, True) if self.flip else (False, )
        return [View(len(flips) * s + f, scale, flipped)
                for s, scale in enumerate(self.scales) for f, flipped in enumerate(flips)]

    def index(self, scale: float, flip: bool = False) -> int | None:
        """The index of the view at ``scale`` (flipped or not), or None when there is none."""
        return next((v.index for v in self.all if v.scale == scale and v.flip == flip), None)

    def size(self, ctx: StepContext) -> tuple[int, int] | None:
        """Where the probabilities live: the original size with ``'original'`` views, the input
        size with ``'input'`` views of a segmentor, None for a classifier."""
        if self.source == 'original':
            return ctx.original_size()
        return tuple(ctx.inputs.shape[2:]) if ctx.metas is not None else None

    @torch.no_grad()
    def run(self,
            model: nn.Module,
            ctx: StepContext,
            views: Sequence[View] | None = None,
            average: bool = True,
            keep: Sequence[int] = (),
            transform: Transform | None = None) -> ViewProbs:
        """``model``'s probabilities over ``views`` (default: all of them).

        Args:
            model (nn.Module): The model (teacher, anchor) to run.
            ctx (StepContext): The step: its inputs, its images' meta information.
            views (Sequence[View], optional): Which views to run. Defaults to all.
            average (bool): Return the mean over them (summed in view order, then divided, as
                the reference's ``aug_test``). Defaults to True.
            keep (Sequence[int]): Indices of views whose probabilities are returned.
            transform (Callable, optional): ``transform(view, inputs)`` changes a view's
                normalised input first (SVDP's prompt).
        """
        views = self.all if views is None else list(views)
        if self.source == 'original':
            if ctx.metas is None:
                raise ValueError(f"{self.owner}.view_source='original' needs a segmentor (the "
                                 "images' meta information and original image)")
            per_image = [self._run_original(model, ctx, i, views, average, keep, transform)
                         for i in range(ctx.inputs.size(0))]
            mean = (torch.cat([p.average for p in per_image]) if average else None)
            return ViewProbs(mean, {k: torch.cat([p.views[k] for p in per_image])
                                    for k in keep})
        return self._run_input(model, ctx, views, average, keep, transform)

    # ------------------------------------------------------------------ 'input' views
    def _run_input(self, model, ctx, views, average, keep, transform) -> ViewProbs:
        x, size = ctx.inputs, self.size(ctx)
        n = x.size(0)
        total, kept, count = 0, {}, 0
        for scale, group in _by_scale(views):
            view_in = x if scale == 1 else F.interpolate(
                x, scale_factor=scale, mode='bilinear', align_corners=False)
            batch = [view_in.flip(-1) if v.flip else view_in for v in group]
            if transform is not None:
                batch = [transform(v, b) for v, b in zip(group, batch)]
            logits = []
            for start in range(0, len(batch), self.views_per_forward):
                out = ctx.logits_fn(model, torch.cat(batch[start:start + self.views_per_forward]))
                logits.extend(out.split(n))
            scale_sum = 0  # a scale's views summed first, then added (the toolkit's own order)
            for view, out in zip(group, logits):
                if view.flip and out.dim() == 4:
                    out = out.flip(-1)
                probs = _resized(out, size).softmax(1)
                if view.index in keep:
                    kept[view.index] = probs
                scale_sum = scale_sum + probs
                count += 1
            if average:
                total = total + scale_sum
        return ViewProbs(total / count if average else None, kept)

    # ------------------------------------------------------------------ 'original' views
    def _run_original(self, model, ctx, i, views, average, keep, transform) -> ViewProbs:
        meta = ctx.metas[i]
        image = _original_image(meta, self.owner)
        input_hw = tuple(meta['img_shape'][:2])
        size = ctx.original_size()
        device = ctx.inputs.device
        preprocessor = ctx.model.data_preprocessor
        total, kept, count = 0, {}, 0
        for scale, group in _by_scale(views):
            inputs = []
            for view in group:
                raw = original_view(image, scale, view.flip, input_hw, self.keep_ratio)
                x = preprocessor(dict(inputs=[raw.to(device)], data_samples=None),
                                 False)['inputs']
                inputs.append(x if transform is None else transform(view, x))
            for view, logits in zip(group, self._infer(model, inputs, ctx.logits_fn)):
                probs = F.interpolate(logits, size=size, mode='bilinear',
                                      align_corners=bool(getattr(model, 'align_corners',
                                                                 False))).softmax(1)
                if view.flip:
                    probs = probs.flip(-1)
                if view.index in keep:
                    kept[view.index] = probs
                if average:
                    total, count = total + probs, count + 1
        return ViewProbs(total / count if average else None, kept)

    def _infer(self, model: nn.Module, inputs: list[Tensor], logits_fn) -> list[Tensor]:
        """MMSeg's ``inference`` (slide or whole) of each (1, 3, h, w) input of one size, with
        the windows of all of them batched ``views_per_forward`` at a time; logits (the decode
        head's, from the step's ``logits_fn``) at the input's size, each window added in
        MMSeg's order and divided by the count."""
        height, width = inputs[0].shape[2:]
        boxes = slide_boxes(height, width, getattr(model, 'test_cfg', None))
        align = bool(getattr(model, 'align_corners', False))
        jobs = [(k, box) for k in range(len(inputs)) for box in boxes]
        preds: list[Tensor | None] = [None] * len(inputs)
        count = inputs[0].new_zeros((1, 1, height, width))
        for box in boxes:
            y1, y2, x1, x2 = box
            count[:, :, y1:y2, x1:x2] += 1
        for start in range(0, len(jobs), self.views_per_forward):
            part = jobs[start:start + self.views_per_forward]
            batch = torch.cat([inputs[k][:, :, y1:y2, x1:x2] for k, (y1, y2, x1, x2) in part])
            logits = F.interpolate(logits_fn(model, batch), size=batch.shape[2:],
                                   mode='bilinear', align_corners=align)
            for (k, (y1, y2, x1, x2)), out in zip(part, logits.split(1)):
                if len(boxes) == 1:
                    preds[k] = out
                    continue
                if preds[k] is None:
                    preds[k] = out.new_zeros((1, out.size(1), height, width))
                preds[k][:, :, y1:y2, x1:x2] += out  # in window order, as MMSeg adds them
        return preds if len(boxes) == 1 else [p / count for p in preds]


def _by_scale(views: Sequence[View]) -> list[tuple[float, list[View]]]:
    """The views grouped by scale (a view and its flipped twin), in order."""
    groups: list[tuple[float, list[View]]] = []
    for view in sorted(views, key=lambda v: v.index):
        if groups and groups[-1][0] == view.scale:
            groups[-1][1].append(view)
        else:
            groups.append((view.scale, [view]))
    return groups


def _original_image(meta: dict, owner: str) -> np.ndarray:
    image = meta.get('ori_img')
    if image is None:
        raise KeyError(f"{owner}.view_source='original' needs the original image in the data "
                       "samples: put dict(type='KeepOriginalImage') after LoadImageFromFile and "
                       "'ori_img' in PackSegInputs' meta_keys (configs/_base_/datasets/acdc.py, "
                       'original_views_pipeline)')
    return image


def _resized(logits: Tensor, size: tuple | None) -> Tensor:
    if size is None or logits.dim() != 4 or tuple(logits.shape[2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
