"""Robust batch normalisation (RoTTA): a model-side change that a method builds and undoes.

Yuan et al., "Robust Test-Time Adaptation in Dynamic Scenarios", CVPR 2023
(https://arxiv.org/abs/2303.13899), Sec. 3.2; reference: BIT-DA/RoTTA
``core/utils/bn_layers.py`` (the same in mariodoebler/test-time-adaptation ``rotta.py``).

In train mode the layer normalises with statistics blended from those it holds and the batch's
(biased variance), ``mu <- (1 - alpha) mu + alpha mu_batch`` (and the same for the variance),
keeps the blend for the next forward, and normalises with it in this very forward, so the
gradient reaches the batch statistics scaled by ``alpha``. In eval mode it normalises with what
it holds. The held statistics start as the BatchNorm's running statistics.

What this implementation does differently from the reference's ``RobustBN1d``/``RobustBN2d``:
one class serves every BatchNorm (the statistics are taken over every dimension but the
channels, so a ``BatchNorm1d`` over (N, C, L) works too, where the reference's takes (N, C)
only); it shares the BatchNorm's ``weight`` and ``bias`` instead of deep copies of them (the
same values, so the same computation; the original layer gets the adapted affine parameters
back when it is restored); the held statistics keep BatchNorm's names (``running_mean``,
``running_var``, and an unused ``num_batches_tracked``) where the reference calls them
``source_mean``/``source_var``, so the adapted model's state dict loads into the original model,
which then computes in eval mode what the robust layers compute in eval mode; the unused
``target_mean``/``target_var`` buffers are left out.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ['RobustBatchNorm', 'Swap', 'replace_batchnorm', 'restore_batchnorm']


class RobustBatchNorm(nn.Module):
    """Batch normalisation on a moving blend of stored and test-batch statistics.

    Args:
        bn (nn.BatchNorm1d | nn.BatchNorm2d): The layer it replaces; it must hold running
            statistics. Its ``weight`` and ``bias`` are shared, not copied.
        momentum (float): ``alpha``, the weight of the batch's statistics. Defaults to 0.05.
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, momentum: float = 0.05) -> None:
        super().__init__()
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError(f'{type(bn).__name__}({bn.num_features}) has no running statistics '
                             '(track_running_stats=False when it was built): robust batch '
                             'normalisation starts from them')
        if not 0 <= momentum <= 1:
            raise ValueError(f'RobustBatchNorm momentum must be in [0, 1], got {momentum}')
        self.num_features = bn.num_features
        self.momentum = momentum
        self.eps = bn.eps
        self.weight = bn.weight
        self.bias = bn.bias
        # the held statistics, under BatchNorm's names (the reference's source_mean/_var)
        self.register_buffer('running_mean', bn.running_mean.detach().clone())
        self.register_buffer('running_var', bn.running_var.detach().clone())
        if bn.num_batches_tracked is not None:  # unused; kept so the state dict is BatchNorm's
            self.register_buffer('num_batches_tracked', bn.num_batches_tracked.detach().clone())

    def extra_repr(self) -> str:
        return f'{self.num_features}, momentum={self.momentum}, eps={self.eps}'

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1, ) * (x.dim() - 2)
        if self.training:
            dims = [d for d in range(x.dim()) if d != 1]
            b_var, b_mean = torch.var_mean(x, dim=dims, unbiased=False)
            mean = (1 - self.momentum) * self.running_mean + self.momentum * b_mean
            var = (1 - self.momentum) * self.running_var + self.momentum * b_var
            # kept for the next forward, and used in this one (with its graph)
            self.running_mean, self.running_var = mean.detach().clone(), var.detach().clone()
        else:
            mean, var = self.running_mean, self.running_var
        x = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            x = x * self.weight.view(shape)
        if self.bias is not None:
            x = x + self.bias.view(shape)
        return x


class Swap(NamedTuple):
    """One replaced layer: ``setattr(parent, name, original)`` undoes it."""
    parent: nn.Module
    name: str
    original: nn.Module
    robust: RobustBatchNorm


def replace_batchnorm(model: nn.Module, momentum: float) -> list[Swap]:
    """Replace every ``nn.BatchNorm1d``/``nn.BatchNorm2d`` of ``model`` (subclasses included;
    not SyncBatchNorm, which the toolkit turns into BatchNorm without a process group) by a
    :class:`RobustBatchNorm` built from it, as RoTTA's ``configure_model`` does.

    Returns:
        list[Swap]: What was replaced, for :func:`restore_batchnorm`.
    """
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))]
    swaps = []
    for name, module in targets:
        if not name:
            raise ValueError('the model is itself a BatchNorm layer; nothing to replace it in')
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name)
        robust = RobustBatchNorm(module, momentum)
        robust.train(module.training)  # a new module is in train mode, which moves statistics
        setattr(parent, child, robust)
        swaps.append(Swap(parent, child, module, robust))
    return swaps


@torch.no_grad()
def restore_batchnorm(swaps: list[Swap]) -> None:
    """Put the original BatchNorm layers back, with the robust layers' statistics as their
    running statistics (the affine parameters are shared), so that in eval mode the model
    computes what it computed with the robust layers."""
    for swap in reversed(swaps):
        swap.original.running_mean.copy_(swap.robust.running_mean)
        swap.original.running_var.copy_(swap.robust.running_var)
        setattr(swap.parent, swap.name, swap.original)
