"""Shared helpers that pick layers and parameters by module type, never by name."""
from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ['NORM_TYPES', 'collect_norm_params', 'norm_layers', 'use_batch_statistics']

#: Normalization layers whose affine parameters Tent-style methods adapt. Subclasses count too
#: (SyncBatchNorm, mmpretrain's LayerNorm2d, ...).
NORM_TYPES = (_BatchNorm, nn.LayerNorm, nn.GroupNorm, _InstanceNorm)


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every normalization layer, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NORM_TYPES)]


def collect_norm_params(model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
    """The affine parameters (``weight``, ``bias``) of every normalization layer."""
    params, names = [], []
    for mod_name, module in norm_layers(model):
        for p_name, param in module.named_parameters(recurse=False):
            if p_name in ('weight', 'bias'):
                params.append(param)
                names.append(f'{mod_name}.{p_name}' if mod_name else p_name)
    return params, names


def use_batch_statistics(model: nn.Module) -> list[nn.Module]:
    """Make every BatchNorm normalise with the statistics of the current test batch.

    The layers go to train mode with ``track_running_stats=False``: the running buffers are kept
    (and stay untouched), so a checkpoint or a reset still sees them.

    Returns:
        list[nn.Module]: The layers changed, to be kept in train mode.
    """
    layers = []
    for _, module in norm_layers(model):
        if isinstance(module, _BatchNorm):
            module.train()
            module.track_running_stats = False
            layers.append(module)
    return layers
