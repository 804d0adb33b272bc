"""The rank collectives of adaptation: every rank takes the same decision and the same step.

With one process each function is the identity; with several they go through
``mmengine.dist``, because MMEngine's ``MMDistributedDataParallel.test_step`` bypasses DDP and
nothing else would keep the replicas identical at test time.
"""
from __future__ import annotations

import torch
from mmengine.dist import all_reduce, get_world_size
from torch import nn

__all__ = ['all_ranks', 'rank_mean', 'rank_sum', 'sync_gradients']


def all_ranks(flag: bool) -> bool:
    """True when ``flag`` holds on every rank (``flag`` itself with one process)."""
    if get_world_size() == 1:
        return flag
    value = torch.tensor([float(flag)])
    all_reduce(value, op='min')
    return bool(value.item() > 0.5)


def sync_gradients(params: list[nn.Parameter]) -> None:
    """Average ``params``' gradients over all ranks, in one collective call.

    A parameter without a gradient on one rank counts as a zero gradient there and receives
    the average, so every rank takes the same step.
    """
    if get_world_size() == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    all_reduce(flat, op='mean')
    offset = 0
    for param, grad in zip(params, grads):
        synced = flat[offset:offset + grad.numel()].view_as(grad)
        offset += grad.numel()
        if param.grad is None:
            param.grad = synced.clone()
        else:
            param.grad.copy_(synced)


def rank_mean(value: float, defined: bool) -> tuple[float, bool]:
    """The mean of ``value`` over the ranks where it is ``defined`` (and whether any is)."""
    if get_world_size() == 1:
        return value, defined
    total = torch.tensor([value if defined else 0.0, float(defined)], dtype=torch.float64)
    all_reduce(total, op='sum')
    count = float(total[1])
    return (float(total[0]) / count if count else 0.0), count > 0


def rank_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks (``tensor`` itself with one process), e.g. the
    per-class feature sums and counts of source prototypes that each rank's share of a data
    set gives."""
    if get_world_size() == 1:
        return tensor
    total = tensor.clone()
    all_reduce(total, op='sum')
    return total
