"""The models a mean-teacher method keeps beside the adapted one, and what they compute.

Shared by the mean-teacher methods (CoTTA, DAT, SVDP, RMT, RoTTA) and by ROID's weight
ensembling with the source model.
"""
from __future__ import annotations

import copy
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from .params import use_batch_statistics

__all__ = ['ema_update', 'frozen_copy']


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
