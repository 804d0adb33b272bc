"""The models a mean-teacher method keeps beside the adapted one, and what they compute.

Shared by the mean-teacher methods (CoTTA, DAT, SVDP, RMT, RoTTA) and by ROID's weight
ensembling with the source model:

- :func:`frozen_copy`: the frozen source model (the "anchor") and a teacher's starting point;
- :func:`ema_update`: a teacher as an exponential moving average of the student;
- :func:`mc_dropout_uncertainty`: Monte-Carlo dropout passes of a segmentor's decode head over
  one backbone pass, reduced to a per-pixel uncertainty (SVDP);
- :func:`label_cross_entropy`: the student's per-pixel cross entropy against the teacher's
  label, at the label's size (CoTTA, DAT, SVDP).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..structures import StepContext, TapOutput
from .params import use_batch_statistics

__all__ = ['SeededDropout', 'ema_update', 'frozen_copy', 'label_cross_entropy', 'logits_at',
           'mc_dropout_uncertainty', 'swapped_dropout']


def frozen_copy(model: nn.Module, method: object, batch_stats: bool = False) -> nn.Module:
    """A detached copy of ``model`` in eval mode, its parameters without gradients.

    The copy leaves out ``method`` and what references it (the model's adapter and its tap), so
    that a teacher does not carry a second method. ``batch_stats`` puts its BatchNorm layers on
    test-batch statistics, as the references' copies of a configured model are.
    """
    memo = {id(method): method}
    for value in vars(model).values():
        if getattr(value, 'method', None) is method:  # the model's adapter, and its tap
            memo[id(value)] = value
            if getattr(value, 'tap', None) is not None:
                memo[id(value.tap)] = value.tap
    clone = copy.deepcopy(model, memo)
    clone.eval()
    if batch_stats:
        use_batch_statistics(clone)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


@torch.no_grad()
def ema_update(teacher: nn.Module | Iterable[Tensor], student: nn.Module | Iterable[Tensor],
               alpha: float | Sequence[float]) -> None:
    """``t <- alpha * t + (1 - alpha) * s`` for every pair, in place and in order.

    The references compute the two products and their sum as written (not
    ``t.mul_(alpha).add_(s, alpha=1 - alpha)``, which rounds differently in the last bit).

    Args:
        teacher (nn.Module | Iterable[Tensor]): Updated in place (a module's parameters, or
            the tensors given).
        student (nn.Module | Iterable[Tensor]): Merged in, the same structure.
        alpha (float | Sequence[float]): The weight of the old value: one rate, or one per pair.
    """
    targets = list(teacher.parameters() if isinstance(teacher, nn.Module) else teacher)
    sources = list(student.parameters() if isinstance(student, nn.Module) else student)
    if len(targets) != len(sources):
        raise ValueError(f'ema_update: {len(targets)} tensors to update, {len(sources)} given')
    rates = [alpha] * len(targets) if isinstance(alpha, (int, float)) else list(alpha)
    if len(rates) != len(targets):
        raise ValueError(f'ema_update: {len(rates)} rates for {len(targets)} tensors')
    for t, s, rate in zip(targets, sources, rates):
        t.copy_(rate * t + (1 - rate) * s.detach().to(t.device))


class SeededDropout(nn.Module):
    """Element-wise dropout (``nn.Dropout``'s arithmetic) whose masks come from ``generator``.

    ``x * bernoulli(1 - p) / (1 - p)``, as ATen's dropout computes it, so that Monte-Carlo
    passes are reproducible and resumable without touching the global random state.
    """

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f'SeededDropout.p must be in [0, 1), got {p}')
        self.p = p
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        noise = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * noise.div_(1 - self.p)


@contextmanager
def swapped_dropout(head: nn.Module, dropout: nn.Module) -> Iterator[None]:
    """Use ``dropout`` as ``head.dropout`` (the layer MMSeg's ``BaseDecodeHead.cls_seg`` applies
    before its classifier) inside the block; the head's own comes back after it."""
    if not hasattr(head, 'dropout'):
        raise TypeError(f'{type(head).__name__} has no dropout layer before its classifier '
                        '(BaseDecodeHead.dropout): Monte-Carlo dropout needs one')
    own = head.dropout
    head.dropout = dropout
    try:
        yield
    finally:
        head.dropout = own


@torch.no_grad()
def mc_dropout_uncertainty(model: nn.Module,
                           inputs: Tensor,
                           size: tuple[int, int],
                           passes: int,
                           p: float,
                           generator: torch.Generator) -> Tensor:
    """SVDP's uncertainty map: the per-class variance of ``passes`` dropout predictions, summed
    over the classes.

    The backbone runs once on ``inputs`` (the whole image); the decode head runs ``passes``
    times with its dropout replaced by an element-wise :class:`SeededDropout` ``p``. Each pass's
    logits are resized once (bilinear) to ``size`` and turned into probabilities. The variance
    is the population one (``np.var``, ddof 0), and every sum is sequential in the reference's
    order (over passes, then over classes), so the map is the reference's float for float.

    Args:
        model (nn.Module): An MMSeg segmentor (``extract_feat``, ``decode_head``).
        inputs (Tensor): (N, 3, H, W), preprocessed.
        size (tuple[int, int]): Where the map lives (the original size).
        passes (int): Dropout passes of the head.
        p (float): Their dropout probability.
        generator (torch.Generator): On ``inputs``' device.

    Returns:
        Tensor: (N, *size) float.
    """
    head = model.decode_head
    align = bool(getattr(model, 'align_corners', False))
    feats = model.extract_feat(inputs)
    with swapped_dropout(head, SeededDropout(p, generator)):
        logits = [head.forward(feats) for _ in range(passes)]  # small: the decoder's size

    def probs(t: int) -> Tensor:
        return F.interpolate(logits[t], size=size, mode='bilinear',
                             align_corners=align).softmax(1)

    # two passes over the predictions instead of a stack of them (10 x 19 x 1080 x 1920)
    mean = probs(0)
    for t in range(1, passes):
        mean = mean + probs(t)
    mean = mean / passes
    var = None
    for t in range(passes):
        dev = probs(t) - mean
        var = dev * dev if var is None else var + dev * dev
    var = var / passes
    total = var[:, 0]
    for c in range(1, var.size(1)):
        total = total + var[:, c]
    return total


def logits_at(out: TapOutput, ctx: StepContext, size: Sequence[int]) -> Tensor:
    """The student's logits at ``size``: its decoder logits resized once (bilinear), as MMSeg's
    decode-head loss resizes them to the label's size; slide inference over several crops is
    replaced by one whole-image forward, as the reference's training forward is. A classifier's
    (N, C) logits come back as they are."""
    logits = out.logits
    if logits.dim() == 3:  # several crops were joined
        logits = ctx.forward().logits
    if logits.dim() == 4:
        logits = F.interpolate(logits, size=tuple(size), mode='bilinear', align_corners=False)
    return logits


def label_cross_entropy(out: TapOutput, ctx: StepContext, label: Tensor) -> Tensor:
    """The student's per-position cross entropy against ``label`` ((N, H, W), or (N,) for a
    classifier), with its logits at the label's size (:func:`logits_at`)."""
    return F.cross_entropy(logits_at(out, ctx, label.shape[1:]), label, reduction='none')
