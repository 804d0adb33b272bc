"""CoTTA: continual test-time adaptation with a mean teacher and stochastic restore.

Paper: Wang et al., "Continual Test-Time Domain Adaptation", CVPR 2022
(https://arxiv.org/abs/2203.13591). Reference: https://github.com/qinenergy/cotta (its
segmentation code, ``single_gpu_cotta``, is what the published Cityscapes->ACDC table ran).

Per step (Sec. 3):

- the teacher, an exponential moving average of the student (``alpha = 0.999``, Eq. 2), labels
  the batch; where the source model (the "anchor") is not confident (max probability below
  ``confidence``, 0.69), the label is the teacher's prediction averaged over augmented views:
  ``scales`` x horizontal flip, 14 views by default (Eq. 3-4);
- the student (every parameter) is trained with cross entropy on those labels, computed at the
  input resolution as MMSeg's decode-head loss does;
- stochastic restore: each element of each weight returns to its source value with probability
  ``restore_prob`` (0.01, Eq. 6);
- the reported prediction is the teacher's label, as in the reference evaluation.

Where the views come from (``view_source``):

- ``'original'``, the reference's: each scale is resized from the original image (bilinear,
  ``mmcv.imrescale`` to ``scale`` times the input size, as the reference's multi-scale test
  pipeline does), flipped, normalised by the model's data preprocessor, and run through the
  model's own inference (slide inference with the config's crop and stride, like the
  student's prediction), one view per forward; flipped views are flipped back, and the
  probabilities are averaged at the original size (1080x1920 on ACDC), where the anchor's
  confidence, the pseudo-label, the student's cross entropy (its decoder logits upsampled
  there) and the scored prediction live too. The pipeline must keep the original image
  (:class:`~stag_seg.datasets.KeepOriginalImage`).
- ``'input'`` (default; a faster deviation): the normalised network input is interpolated
  (views above scale 1 then have no native detail), each view runs whole, original and
  flipped as one batch (14 views in 7 forwards), and everything lives at the input size.

``batch_stats=False`` (the reference's segmentation code keeps the models in eval mode);
``True`` normalises BatchNorm with the test batch in the student, the teacher and the anchor, as
its classification code does. Restore masks come from a generator seeded by ``seed``,
identical on every rank. With STAG, choose ``anchors='live'``: CoTTA updates the classifier.

The reference's classification code (``cifar/cotta.py``, ``imagenet/cotta.py``) is a set of
options here (``configs/_base_/tta/cotta-cls.py``): ``confidence_mode='batch_mean'``, one
decision per batch (the views for every sample when the batch mean of the anchor's max
probability, over all pixels for a segmentor, is below ``confidence``; for none otherwise);
``label='soft'``, the soft cross entropy ``-sum_c softmax(t)_c log softmax(s)_c`` (CIFAR), or
``'symmetric'``, its mean with ``-sum_c softmax(s)_c log softmax(t)_c`` (ImageNet);
``views='random'``, ``num_views`` random views (:mod:`~stag_seg.methods.augment`), one teacher
forward each, whose *logits* are averaged (the scale-flip views average probabilities, as the
segmentation code does). Random views are drawn in pixel space (``inputs * std + mean`` with the
model's ``data_preprocessor`` statistics, over 255, as the reference's [0, 1] inputs) from a
generator seeded by ``seed + 1``, only when some sample needs them, and for classifiers only: a
segmentation map would have to be warped back.
"""
from __future__ import annotations

import copy
from typing import Sequence

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import TTA_METHODS
from .augment import random_view
from ..structures import StepContext, TapOutput
from .base import BaseTTAMethod, MethodLoss, at_positions, valid_mean
from .params import collect_weights_and_biases, use_batch_statistics


__all__ = ['CoTTA']

DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
VIEW_SOURCES = ('input', 'original')
CONFIDENCE_MODES = ('element', 'batch_mean')
LABELS = ('hard', 'soft', 'symmetric')
VIEWS = ('scale_flip', 'random')


@TTA_METHODS.register_module()
class CoTTA(BaseTTAMethod):
    """Mean-teacher self-training on augmentation-averaged labels with stochastic restore.

    Args:
        alpha (float): EMA coefficient of the teacher. Defaults to 0.999.
        confidence (float): Anchor confidence below which the augmented labels are used.
            Defaults to 0.69 (the reference: 5% quantile of the source confidence, 0.74, minus
            a margin).
        restore_prob (float): Per-element probability of a restore. Defaults to 0.01.
        scales (Sequence[float]): Scales of the teacher views. Defaults to 0.5 ... 2.0.
        flip (bool): Add horizontally flipped views. Defaults to True.
        batch_stats (bool): BatchNorm with test-batch statistics. Defaults to False.
        seed (int): Seed of the restore masks (and, plus one, of the random views).
            Defaults to 0.
        confidence_mode (str): ``'element'`` (per pixel or sample) or ``'batch_mean'`` (one
            decision per batch, the classification code's). Defaults to ``'element'``.
        label (str): ``'hard'`` (cross entropy on the teacher's argmax), ``'soft'`` or
            ``'symmetric'`` (soft cross entropy, one-sided or symmetric). Defaults to
            ``'hard'``.
        views (str): ``'scale_flip'`` (``scales`` x ``flip``) or ``'random'`` (``num_views``
            random augmentations; classifiers only). Defaults to ``'scale_flip'``.
        num_views (int): Views of ``views='random'``. Defaults to 32.
        view_source (str): ``'input'`` or ``'original'``: where the scale-flip views are made
            (see the module docstring). Defaults to ``'input'``.
        **kwargs: ``optim_wrapper``, ``regularizers``.
    """

    adapts = 'tensors named weight or bias'

    def __init__(self,
                 alpha: float = 0.999,
                 confidence: float = 0.69,
                 restore_prob: float = 0.01,
                 scales: Sequence[float] = DEFAULT_SCALES,
                 flip: bool = True,
                 batch_stats: bool = False,
                 seed: int = 0,
                 confidence_mode: str = 'element',
                 label: str = 'hard',
                 views: str = 'scale_flip',
                 num_views: int = 32,
                 view_source: str = 'input',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= alpha <= 1:
            raise ValueError(f'CoTTA.alpha must be in [0, 1], got {alpha}')
        if not 0 <= restore_prob <= 1:
            raise ValueError(f'CoTTA.restore_prob must be in [0, 1], got {restore_prob}')
        if not scales or min(scales) <= 0:
            raise ValueError(f'CoTTA.scales must be positive numbers, got {scales}')
        for key, value, allowed in (('confidence_mode', confidence_mode, CONFIDENCE_MODES),
                                    ('label', label, LABELS), ('views', views, VIEWS),
                                    ('view_source', view_source, VIEW_SOURCES)):
            if value not in allowed:
                raise ValueError(f'CoTTA.{key} must be one of {allowed}, got {value!r}')
        if num_views < 1:
            raise ValueError(f'CoTTA.num_views must be >= 1, got {num_views}')
        if view_source == 'original' and views != 'scale_flip':
            raise ValueError("CoTTA.view_source='original' makes the scale-flip views of a "
                             f"segmentor; it does not apply to views={views!r}")
        self.alpha = alpha
        self.confidence = confidence
        self.restore_prob = restore_prob
        self.scales = tuple(scales)
        self.flip = flip
        self.batch_stats = batch_stats
        self.seed = seed
        self.confidence_mode = confidence_mode
        self.label = label
        self.views = views
        self.num_views = num_views
        self.view_source = view_source
        self.generator = torch.Generator().manual_seed(seed)
        self.view_generator = torch.Generator().manual_seed(seed + 1)
        self.teacher: nn.Module | None = None
        self.anchor: nn.Module | None = None
        self._pixels: tuple[Tensor, Tensor] | None = None  # (mean, std) of the inputs

    def __repr__(self) -> str:
        views = (self.num_views if self.views == 'random'
                 else len(self.scales) * (1 + self.flip))
        return (f'CoTTA(alpha={self.alpha}, confidence={self.confidence}, restore_prob='
                f'{self.restore_prob}, views={views}'
                + (", view_source='original'" if self.view_source == 'original' else '')
                + f', regularizers={self.regularizers})')

    # ------------------------------------------------------------------ configure
    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        return use_batch_statistics(model) if self.batch_stats else []

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        # the reference trains and restores the tensors named weight or bias: all of a
        # SegFormer's, but not a ViT's class token and position embedding
        return collect_weights_and_biases(model)

    def setup(self, model: nn.Module) -> None:
        self.teacher = _frozen_copy(model, self)
        self.anchor = _frozen_copy(model, self)
        self._pixels = _pixel_statistics(model)

    def reset_state(self) -> None:
        if self.teacher is not None:
            self.teacher.load_state_dict(self.model.state_dict())
        self.generator.manual_seed(self.seed)
        self.view_generator.manual_seed(self.seed + 1)

    def extra_state(self) -> dict:
        return dict(teacher=self.teacher.state_dict() if self.teacher is not None else None,
                    generator=self.generator.get_state(),
                    view_generator=self.view_generator.get_state())

    def load_extra_state(self, state: dict) -> None:
        if state['teacher'] is not None:
            self.teacher.load_state_dict(state['teacher'])
        self.generator.set_state(state['generator'])
        if 'view_generator' in state:  # absent from states saved before random views existed
            self.view_generator.set_state(state['view_generator'])

    # ------------------------------------------------------------------ one step
    def prediction(self, out: TapOutput, ctx: StepContext) -> Tensor:
        """The teacher's label (where the anchor is unsure, over the augmented views); kept in
        ``ctx.state`` for the loss and returned as log-probabilities at the input size (the
        original size with ``view_source='original'``)."""
        if self.views == 'random' and out.logits.dim() != 2:
            raise ValueError("CoTTA.views='random' needs a classifier's (N, C) logits, got "
                             f'{tuple(out.logits.shape)}: a segmentation map would have to be '
                             "warped back; use views='scale_flip' for segmentors")
        if self.view_source == 'original':
            if ctx.metas is None:
                raise ValueError("CoTTA.view_source='original' needs a segmentor (the images' "
                                 'meta information and original image)')
            anchor_probs, standard, averaged = self._original_views(ctx)
            confident = self._confident(anchor_probs.amax(1, keepdim=True))
            return self._label(ctx, confident, standard, averaged)
        size = ctx.inputs.shape[2:] if out.logits.dim() == 4 else None
        anchor_probs = _upsampled(ctx.logits_fn(self.anchor, ctx.inputs), size).softmax(1)
        confident = self._confident(anchor_probs.amax(1, keepdim=True))
        if self.views == 'random':
            standard, averaged = self._random_views(ctx, need=not bool(confident.all()))
        else:
            standard, averaged = self._teacher_views(ctx, size)
        return self._label(ctx, confident, standard, averaged)

    def _label(self, ctx: StepContext, confident: Tensor, standard: Tensor,
               averaged: Tensor | None) -> Tensor:
        """Keep the label (and its probabilities) in ``ctx.state``; return log-probabilities."""
        probs = standard if averaged is None else torch.where(confident, standard, averaged)
        ctx.state['cotta_label'] = probs.argmax(1)
        if self.label != 'hard':
            ctx.state['cotta_probs'] = probs
        ctx.state['cotta_confident'] = float(confident.float().mean())
        return probs.clamp_min(1e-12).log()

    def _confident(self, max_prob: Tensor) -> Tensor:
        """Where the teacher's plain prediction is kept: (N, 1, ...) bool."""
        if self.confidence_mode == 'element':
            return max_prob > self.confidence
        # the classification code averages first: views for all when the mean is below
        return (max_prob.mean() >= self.confidence).expand_as(max_prob)

    def random_view(self, inputs: Tensor) -> Tensor:
        """One random view (:func:`~stag_seg.methods.augment.random_view`) of a preprocessed
        batch, drawn in pixel space and normalised again; same shape as ``inputs``."""
        mean, std = (t.to(inputs) for t in self._pixels)
        images = (inputs * std + mean) / 255
        return (random_view(images, self.view_generator) * 255 - mean) / std

    def _random_views(self, ctx: StepContext, need: bool) -> tuple[Tensor, Tensor | None]:
        """The teacher's probabilities on the input, and on the mean logits of
        ``num_views`` random views (None unless ``need``)."""
        standard = ctx.logits_fn(self.teacher, ctx.inputs).softmax(1)
        if not need:
            return standard, None
        total = 0
        for _ in range(self.num_views):  # one forward each: BatchNorm sees one view's batch
            total = total + ctx.logits_fn(self.teacher, self.random_view(ctx.inputs))
        return standard, (total / self.num_views).softmax(1)

    def original_view(self, image, scale: float, flip: bool, input_hw: tuple[int, int]
                      ) -> Tensor:
        """One view of ``image`` ((H, W, 3) uint8, as loaded) as the reference's multi-scale
        test pipeline makes it: rescaled (bilinear, keeping the aspect ratio) to at most
        ``scale`` times the input size ``input_hw``, flipped when ``flip``; (3, h, w) uint8."""
        height, width = input_hw
        view = mmcv.imrescale(image, (int(width * scale), int(height * scale)),
                              interpolation='bilinear')
        if flip:
            view = view[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1)))

    def _original_views(self, ctx: StepContext) -> tuple[Tensor, Tensor, Tensor]:
        """Probabilities at the original size of the anchor on the input, of the teacher on
        the input, and of the teacher averaged over every view made from the original image;
        each (N, C, H, W)."""
        device = ctx.inputs.device
        size = ctx.original_size()
        anchors, standards, averages = [], [], []
        for i, meta in enumerate(ctx.metas):
            image = meta.get('ori_img')
            if image is None:
                raise KeyError("CoTTA.view_source='original' needs the original image in the "
                               "data samples: put dict(type='KeepOriginalImage') after "
                               "LoadImageFromFile and 'ori_img' in PackSegInputs' meta_keys "
                               "(configs/_base_/datasets/acdc.py, original_views_pipeline)")
            input_hw = tuple(meta['img_shape'][:2])
            anchors.append(self._slide_probs(self.anchor, ctx.inputs[i:i + 1], size))
            standard, total, count = None, 0, 0
            for scale in self.scales:
                for flip in ((False, True) if self.flip else (False, )):
                    view = self.original_view(image, scale, flip, input_hw)
                    view = self.model.data_preprocessor(
                        dict(inputs=[view.to(device)], data_samples=None), False)['inputs']
                    probs = self._slide_probs(self.teacher, view, size)
                    if flip:
                        probs = probs.flip(-1)
                    elif scale == 1 and standard is None:
                        standard = probs
                    total, count = total + probs, count + 1
            if standard is None:  # no scale 1 among the views: the input as it is
                standard = self._slide_probs(self.teacher, ctx.inputs[i:i + 1], size)
            standards.append(standard)
            averages.append(total / count)
        return torch.cat(anchors), torch.cat(standards), torch.cat(averages)

    @staticmethod
    def _slide_probs(model: nn.Module, inputs: Tensor, size: tuple) -> Tensor:
        """``model``'s own inference (slide or whole, as its ``test_cfg`` says) of one image,
        as probabilities resized to ``size``."""
        shape = tuple(inputs.shape[2:])
        meta = dict(img_shape=shape, ori_shape=tuple(size), pad_shape=shape,
                    padding_size=[0, 0, 0, 0])
        logits = model.inference(inputs, [meta])
        return F.interpolate(logits, size=size, mode='bilinear',
                             align_corners=bool(getattr(model, 'align_corners', False))
                             ).softmax(1)

    def _teacher_views(self, ctx: StepContext, size: tuple | None) -> tuple[Tensor, Tensor]:
        """The teacher's probabilities on the input as it is, and averaged over all views."""
        x = ctx.inputs
        standard, total, count = None, 0, 0
        for scale in self.scales:
            view = x if scale == 1 else F.interpolate(
                x, scale_factor=scale, mode='bilinear', align_corners=False)
            batch = torch.cat([view, view.flip(-1)]) if self.flip else view
            logits = ctx.logits_fn(self.teacher, batch)
            if self.flip:
                n = x.size(0)
                logits = torch.cat([logits[:n], logits[n:].flip(-1) if logits.dim() == 4
                                    else logits[n:]])
            probs = _upsampled(logits, size).softmax(1)
            if scale == 1 and standard is None:
                standard = probs[:x.size(0)]
            total = total + _sum_views(probs, x.size(0))
            count += 2 if self.flip else 1
        if standard is None:  # no scale 1 among the views: the plain input
            standard = _upsampled(ctx.logits_fn(self.teacher, x), size).softmax(1)
        return standard, total / count

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        label = ctx.state['cotta_label']
        logits = out.logits
        if logits.dim() == 3 and label.dim() == 3:
            # slide inference over several crops: the student trains on a whole-image forward,
            # as the reference's training forward does
            logits = ctx.forward().logits
        if logits.dim() == 4:
            logits = F.interpolate(logits, size=label.shape[1:], mode='bilinear',
                                   align_corners=False)
        if self.label == 'hard':
            per_pos = F.cross_entropy(logits, label, reduction='none')
        else:
            per_pos = _soft_cross_entropy(logits, ctx.state['cotta_probs'],
                                          symmetric=self.label == 'symmetric')
        valid = out.valid
        if valid is not None and valid.shape != per_pos.shape:
            valid = F.interpolate(valid[:, None].float(), size=per_pos.shape[1:]
                                  )[:, 0] > 0.5
        loss = valid_mean(per_pos, valid)
        return MethodLoss(loss, mask=out.valid, stats=dict(
            cotta_ce=float(loss.detach()), cotta_confident=ctx.state['cotta_confident']),
            reweight=lambda m: valid_mean(per_pos * at_positions(m, per_pos), valid))

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.model.parameters()):
                t.mul_(self.alpha).add_(s.detach(), alpha=1 - self.alpha)
            if self.restore_prob > 0:
                self._restore()

    def _restore(self) -> None:
        """Each element of each weight back to its source value with ``restore_prob``."""
        source = self._source_state
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            mask = torch.rand(param.shape, generator=self.generator) < self.restore_prob
            mask = mask.to(param.device)
            param.copy_(torch.where(mask, source[name].to(param.device), param))


def _frozen_copy(model: nn.Module, method: BaseTTAMethod) -> nn.Module:
    """A detached copy of ``model`` (not of the method, adapter or tap it references), in eval
    mode."""
    memo = {id(method): method}
    for value in vars(model).values():
        if getattr(value, 'method', None) is method:  # the model's adapter, and its tap
            memo[id(value)] = value
            if getattr(value, 'tap', None) is not None:
                memo[id(value.tap)] = value.tap
    clone = copy.deepcopy(model, memo)
    clone.eval()
    if method.batch_stats:  # as the reference's classification code, whose copies share it
        use_batch_statistics(clone)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _pixel_statistics(model: nn.Module) -> tuple[Tensor, Tensor]:
    """(1, C, 1, 1) ``mean`` and ``std`` that the model's data preprocessor normalises
    [0, 255] pixels with (0 and 1 when it does not normalise)."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    mean, std = getattr(preprocessor, 'mean', None), getattr(preprocessor, 'std', None)
    if mean is None or std is None:
        return torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    return (mean.detach().float().cpu().view(1, -1, 1, 1),
            std.detach().float().cpu().view(1, -1, 1, 1))


def _soft_cross_entropy(logits: Tensor, target: Tensor, symmetric: bool) -> Tensor:
    """``-sum_c target_c log softmax(logits)_c`` per position, (N, *); ``symmetric`` averages
    it with ``-sum_c softmax(logits)_c log target_c``."""
    log_student = logits.log_softmax(1)
    loss = -(target * log_student).sum(1)
    if symmetric:
        reverse = -(log_student.exp() * target.clamp_min(1e-12).log()).sum(1)
        loss = 0.5 * loss + 0.5 * reverse
    return loss


def _upsampled(logits: Tensor, size: tuple | None) -> Tensor:
    if size is None or logits.dim() != 4 or tuple(logits.shape[2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode='bilinear', align_corners=False)


def _sum_views(probs: Tensor, n: int) -> Tensor:
    """Sum the (views * N, C, ...) probabilities over views: (N, C, ...)."""
    return probs.view(-1, n, *probs.shape[1:]).sum(0)
