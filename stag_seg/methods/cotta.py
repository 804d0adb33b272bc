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

Where the views come from (``view_source``, :mod:`~stag_seg.methods.views`, the multi-view
teacher CoTTA shares with DAT and SVDP):

- ``'original'``, the reference's: each scale is resized from the original image (as the
  reference's multi-scale test pipeline does), normalised and run through the model's own
  inference (slide inference with the config's crop and stride); flipped views are flipped back
  and the probabilities averaged at the original size (1080x1920 on ACDC), where the anchor's
  confidence, the pseudo-label, the student's cross entropy (its decoder logits upsampled
  there) and the scored prediction live too. The pipeline must keep the original image
  (:class:`~stag_seg.datasets.KeepOriginalImage`).
- ``'input'`` (default; a faster deviation): the normalised network input is interpolated
  (views above scale 1 then have no native detail), each view runs whole, and everything lives
  at the input size.

``views_per_forward`` is the teacher's memory ceiling: how many inputs of one size (a view and
its flipped twin, or under slide inference their crops) go through the network in one forward;
1 is the reference's loop, one at a time. The teacher and the anchor run before the student's
forward (:meth:`~stag_seg.methods.BaseTTAMethod.prepare`), as in the reference, so their views
never share memory with the student's graph. The teacher is updated with the reference's
formula, ``alpha * t + (1 - alpha) * s`` (:func:`~stag_seg.methods.teachers.ema_update`).

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

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import TTA_METHODS
from ..structures import StepContext, TapOutput
from .augment import pixel_statistics, random_view
from .base import BaseTTAMethod, MethodLoss, at_positions, valid_mean
from .params import collect_weights_and_biases, use_batch_statistics
from .teachers import ema_update, frozen_copy, label_cross_entropy, logits_at
from .views import DEFAULT_SCALES, VIEW_SOURCES, ScaleFlipViews, inference_probs, original_view


__all__ = ['CoTTA']
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
        views_per_forward (int, optional): The teacher's memory ceiling: inputs of one size per
            forward (views, or their slide crops). Defaults to None: 1 with ``'original'``
            views (the reference's loop), 2 with ``'input'`` views.
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
                 views_per_forward: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= alpha <= 1:
            raise ValueError(f'CoTTA.alpha must be in [0, 1], got {alpha}')
        if not 0 <= restore_prob <= 1:
            raise ValueError(f'CoTTA.restore_prob must be in [0, 1], got {restore_prob}')
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
        self.views_per_forward = views_per_forward
        self.teacher_views = ScaleFlipViews(scales, flip, view_source, views_per_forward,
                                            owner=self.name)
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
        self.teacher = frozen_copy(model, self, self.batch_stats)
        self.anchor = frozen_copy(model, self, self.batch_stats)
        self._pixels = pixel_statistics(model)
        # what the restore touches: the tensors named weight or bias that are adapted
        adapted = {id(p) for p in self._adapted}
        named = set(collect_weights_and_biases(model)[1])
        self._restored = [n for n, p in model.named_parameters()
                          if id(p) in adapted and n in named]

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
    def prepare(self, ctx: StepContext) -> None:
        """The teacher's label, before the student's forward (where the anchor is unsure, over
        the augmented views); kept in ``ctx.state`` for the prediction and the loss."""
        if self.views == 'random' and ctx.metas is not None:
            raise ValueError("CoTTA.views='random' needs a classifier's (N, C) logits, got a "
                             "segmentor's: a segmentation map would have to be warped back; use "
                             "views='scale_flip' for segmentors")
        with torch.no_grad():
            size = self.teacher_views.size(ctx)
            anchor_probs = self.plain_probs(self.anchor, ctx, size)
            ctx.state['cotta_anchor_confidence'] = anchor_probs.amax(1)  # DAT reads it too
            confident = self._confident(ctx.state['cotta_anchor_confidence'][:, None])
            if self.views == 'random':
                standard, averaged = self._random_views(ctx, need=not bool(confident.all()))
            else:
                standard, averaged = self._teacher_views(ctx, size)
            ctx.state['cotta_logprobs'] = self._label(ctx, confident, standard, averaged)

    def prediction(self, out: TapOutput, ctx: StepContext) -> Tensor:
        """The teacher's label of :meth:`prepare`, as log-probabilities at the input size (the
        original size with ``view_source='original'``)."""
        return ctx.state['cotta_logprobs']

    def plain_probs(self, model: nn.Module, ctx: StepContext, size: tuple | None) -> Tensor:
        """``model``'s probabilities on the batch as it is, at ``size``: through the model's own
        inference (slide or whole) with ``'original'`` views, whole otherwise."""
        if self.view_source == 'original':
            return inference_probs(model, ctx, size)
        return _upsampled(ctx.logits_fn(model, ctx.inputs), size).softmax(1)

    def _teacher_views(self, ctx: StepContext, size: tuple | None) -> tuple[Tensor, Tensor]:
        """The teacher's probabilities on the input as it is, and averaged over all views."""
        plain = self.teacher_views.index(1.0)
        probs = self.teacher_views.run(self.teacher, ctx, keep=() if plain is None else (plain, ),
                                       transform=self.view_transform(ctx))
        standard = (probs.views[plain] if plain is not None
                    else self.plain_probs(self.teacher, ctx, size))  # no scale 1 among them
        return standard, probs.average

    def view_transform(self, ctx: StepContext):
        """What each teacher view's normalised input becomes before the teacher sees it
        (``transform(view, inputs)``, :meth:`~stag_seg.methods.views.ScaleFlipViews.run`);
        None: nothing (SVDP adds its prompt)."""
        return None

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
        """One view of ``image`` as the reference's multi-scale test pipeline makes it
        (:func:`~stag_seg.methods.views.original_view`)."""
        return original_view(image, scale, flip, input_hw)

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        label = ctx.state['cotta_label']
        if self.label == 'hard':
            per_pos = label_cross_entropy(out, ctx, label)
        else:
            per_pos = _soft_cross_entropy(logits_at(out, ctx, label.shape[1:]),
                                          ctx.state['cotta_probs'],
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
        ema_update(self.teacher, self.model, self.alpha)
        if self.restore_prob > 0:
            self._restore()

    @torch.no_grad()
    def _restore(self) -> None:
        """Each element of each adapted weight or bias back to its source value with
        ``restore_prob``."""
        source = self._source_state
        params = dict(self.model.named_parameters())
        for name in self._restored:
            param = params[name]
            mask = torch.rand(param.shape, generator=self.generator) < self.restore_prob
            mask = mask.to(param.device)
            param.copy_(torch.where(mask, source[name].to(param.device), param))


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
