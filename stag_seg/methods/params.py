"""Shared helpers that pick layers and parameters by module type, never by name."""
from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ['NORM_TYPES', 'collect_norm_params', 'collect_weights_and_biases', 'drop_frozen',
           'norm_layers', 'use_batch_statistics']

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


#: The weights and biases ``nn.MultiheadAttention`` keeps under other names: its input
#: projections, which the reference models hold as the ``weight``/``bias`` of ``nn.Linear``
#: layers (NVlabs' MiT: ``attn.q``, ``attn.kv``; MMSeg's port packs them into ``in_proj_*``).
ATTENTION_WEIGHTS = ('in_proj_weight', 'in_proj_bias', 'q_proj_weight', 'k_proj_weight',
                     'v_proj_weight', 'bias_k', 'bias_v')


def collect_weights_and_biases(model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
    """Every parameter a module owns under the name ``weight`` or ``bias`` (for
    ``nn.MultiheadAttention`` also its input projections, :data:`ATTENTION_WEIGHTS`).

    What CoTTA's code trains and restores: tensors such as a ViT's ``cls_token`` and
    ``pos_embed`` are left out; every parameter of a SegFormer is in.
    """
    params, names = [], []
    for mod_name, module in model.named_modules():
        extra = ATTENTION_WEIGHTS if isinstance(module, nn.MultiheadAttention) else ()
        for p_name, param in module.named_parameters(recurse=False):
            if p_name in ('weight', 'bias') or p_name in extra:
                params.append(param)
                names.append(f'{mod_name}.{p_name}' if mod_name else p_name)
    return params, names


def drop_frozen(model: nn.Module, params: list[nn.Parameter], names: list[str],
                frozen_modules: tuple[str, ...], owner: str = 'tta_method'
                ) -> tuple[list[nn.Parameter], list[str]]:
    """``params``/``names`` without those inside the modules named in ``frozen_modules``.

    Raises:
        KeyError: a name in ``frozen_modules`` is not a module of ``model``.
    """
    if not frozen_modules:
        return params, names
    modules = {name for name, _ in model.named_modules()}
    missing = [m for m in frozen_modules if m not in modules]
    if missing:
        raise KeyError(f'{owner}.frozen_modules: the model has no module {missing[0]!r}')
    keep = [not any(n.startswith(m + '.') for m in frozen_modules) for n in names]
    return [p for p, k in zip(params, keep) if k], [n for n, k in zip(names, keep) if k]


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
