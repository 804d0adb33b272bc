"""Shared helpers that pick layers and parameters by module type, never by name."""
from __future__ import annotations

from mmengine.logging import print_log
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

__all__ = ['NORM_TYPES', 'SINGLE_VALUE_POLICIES', 'SingleValueGuard', 'collect_norm_params',
           'collect_weights_and_biases', 'drop_frozen', 'guard_single_values', 'norm_layers',
           'use_batch_statistics']

#: Normalization layers whose affine parameters Tent-style methods adapt. Subclasses count too
#: (SyncBatchNorm, mmpretrain's LayerNorm2d, ...).
NORM_TYPES = (_BatchNorm, nn.LayerNorm, nn.GroupNorm, _InstanceNorm)


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every normalization layer, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, NORM_TYPES)]


def collect_norm_params(model: nn.Module, types: tuple[type, ...] = NORM_TYPES
                        ) -> tuple[list[nn.Parameter], list[str]]:
    """The affine parameters (``weight``, ``bias``) of every normalization layer (of every
    layer of ``types``, subclasses included)."""
    params, names = [], []
    for mod_name, module in [(n, m) for n, m in model.named_modules() if isinstance(m, types)]:
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


def collect_weights_and_biases(model: nn.Module, attention_inputs: bool = True
                               ) -> tuple[list[nn.Parameter], list[str]]:
    """Every parameter a module owns under the name ``weight`` or ``bias`` (for
    ``nn.MultiheadAttention`` also its input projections, :data:`ATTENTION_WEIGHTS`).

    What CoTTA's code trains and restores: tensors such as a ViT's ``cls_token`` and
    ``pos_embed`` are left out; every parameter of a SegFormer is in.

    Args:
        model (nn.Module): The model.
        attention_inputs (bool): Include the attention layers' input projections. False leaves
            out those of ``nn.MultiheadAttention`` (its ``in_proj_*``) and the ``qkv`` linear
            layer of mmpretrain's ``MultiheadAttention``: what a rule by parameter name
            (``weight``/``bias``) trains on torchvision's ViT, whose attention keeps them under
            other names (RMT's reference on ViT-B/16). Defaults to True.
    """
    skip = set() if attention_inputs else _attention_input_layers(model)
    params, names = [], []
    for mod_name, module in model.named_modules():
        if module in skip:
            continue
        extra = ATTENTION_WEIGHTS if isinstance(module, nn.MultiheadAttention) else ()
        if not attention_inputs:
            extra = ()
        for p_name, param in module.named_parameters(recurse=False):
            if p_name in ('weight', 'bias') or p_name in extra:
                params.append(param)
                names.append(f'{mod_name}.{p_name}' if mod_name else p_name)
    return params, names


def _attention_input_layers(model: nn.Module) -> set[nn.Module]:
    """The ``nn.Linear`` input projections of mmpretrain's ``MultiheadAttention`` layers."""
    try:
        from mmpretrain.models.utils.attention import MultiheadAttention
    except ImportError:  # no mmpretrain model can be in the model then
        return set()
    return {m.qkv for m in model.modules() if isinstance(m, MultiheadAttention)}


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


#: What a BatchNorm on test-batch statistics does with an input that holds one value per channel
#: (batch size 1 through a 1x1 map: ASPP's image pooling, a pyramid pooling module's 1x1 bin):
#: ``'running'`` normalises that input with the layer's running statistics, ``'error'`` raises.
SINGLE_VALUE_POLICIES = ('running', 'error')


class SingleValueGuard:
    """Forward hooks that keep one BatchNorm on batch statistics from failing on one value.

    The statistics of a single value per channel are degenerate (variance 0): PyTorch refuses
    them in train mode ("Expected more than 1 value per channel when training"), and any
    normalisation by them would erase the input. With ``policy='running'`` such a forward runs
    in eval mode, on the running statistics the layer already holds (the source model's), and
    the affine parameters stay in the graph, so a method that adapts them still does. Every
    other forward is left alone.

    Args:
        name (str): The layer's name in the model, for messages.
        policy (str): One of :data:`SINGLE_VALUE_POLICIES`.
    """

    def __init__(self, name: str, policy: str) -> None:
        if policy not in SINGLE_VALUE_POLICIES:
            raise ValueError(f'single_value_bn must be one of {SINGLE_VALUE_POLICIES}, got '
                             f'{policy!r}')
        self.name = name
        self.policy = policy
        #: How many forwards fell back to the running statistics.
        self.count = 0
        self._switched = False
        self._handles: list[RemovableHandle] = []

    def attach(self, layer: nn.Module) -> None:
        """Register the hooks on ``layer``."""
        self._handles = [layer.register_forward_pre_hook(self.before),
                         layer.register_forward_hook(self.after, always_call=True)]

    def remove(self) -> None:
        """Remove the hooks from the layer."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def before(self, module: nn.Module, args: tuple) -> None:
        x = args[0]
        if not module.training or x.numel() != x.size(1):  # more than one value per channel
            return
        if self.policy == 'error':
            raise ValueError(
                f'BatchNorm {self.name!r} gets one value per channel (input '
                f'{tuple(x.shape)}) while it normalises with test-batch statistics: use a larger '
                "batch, or single_value_bn='running' to normalise such inputs with the layer's "
                'running statistics')
        if module.running_mean is None or module.running_var is None:
            raise ValueError(
                f'BatchNorm {self.name!r} gets one value per channel (input {tuple(x.shape)}) '
                'and has no running statistics to fall back on (track_running_stats=False when '
                'it was built): use a larger batch')
        if self.count == 0:
            print_log(f'BatchNorm {self.name!r} gets one value per channel (input '
                      f'{tuple(x.shape)}): such inputs are normalised with its running '
                      "statistics (single_value_bn='running')", logger='current')
        self.count += 1
        self._switched = True
        module.training = False

    def after(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        if self._switched:
            module.training = True
            self._switched = False


def guard_single_values(model: nn.Module, layers: list[nn.Module],
                        policy: str = 'running') -> list[SingleValueGuard]:
    """Give each BatchNorm among ``layers`` a :class:`SingleValueGuard` with ``policy``.

    Returns:
        list[SingleValueGuard]: The guards, attached; ``guard.remove()`` detaches one.
    """
    names = {module: name for name, module in model.named_modules()}
    guards = []
    for layer in layers:
        if isinstance(layer, _BatchNorm):
            guard = SingleValueGuard(names.get(layer, type(layer).__name__), policy)
            guard.attach(layer)
            guards.append(guard)
    return guards
