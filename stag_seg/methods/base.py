"""The life cycle every TTA method shares: configure, loss, reset, release.

A method turns a :class:`~stag_seg.structures.TapOutput` into a
:class:`~stag_seg.structures.MethodLoss` (its loss, the positions it selected and their
weights, a few statistics). It never calls ``backward`` or ``optimizer.step``:
:func:`stag_seg.methods.step.adapt_step` does each once per step, after adding the
regularizers' losses on the method's own mask and weights.
"""
from __future__ import annotations

import copy
import logging
from collections import Counter
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from torch import Tensor, nn

from ..registry import TTA_METHODS, TTA_REGULARIZERS, build, lookup
from ..structures import MethodLoss, NotAdaptableError, StepContext, TapOutput
from .params import NORM_TYPES, SINGLE_VALUE_POLICIES, guard_single_values

__all__ = ['BaseTTAMethod', 'MethodLoss', 'at_positions', 'build_method', 'valid_mean']


class BaseTTAMethod:
    """Base class of TTA methods.

    Subclasses set :attr:`needs_grad` and override :meth:`configure_model`,
    :meth:`collect_params` and :meth:`loss` (and :meth:`after_step`, :meth:`reset_state` when
    they keep state of their own).

    Args:
        optim_wrapper (dict, optional): MMEngine optim wrapper config for the adapted
            parameters, e.g. ``dict(optimizer=dict(type='Adam', lr=7.5e-6))``. Required when the
            method updates parameters. Defaults to None.
        regularizers (Sequence[dict]): Regularizer configs, e.g. ``[dict(type='STAG')]``, added to
            the loss on the method's own mask and weights. Defaults to ().
        single_value_bn (str): What a BatchNorm that the method puts on test-batch statistics
            does with an input of one value per channel (batch size 1 through a 1x1 map, as in
            ASPP's image pooling): ``'running'`` normalises it with the layer's running
            statistics, ``'error'`` raises (:class:`~stag_seg.methods.params.SingleValueGuard`).
            Defaults to ``'running'``.
        reset_every (int): Return to the source (weights, optimizer, method state) after every
            ``reset_every``-th step, counting every step the method takes, skipped and dropped
            ones included; 0 never resets. The schedule of RDumb (Press et al., NeurIPS 2023),
            usable with any method. The count runs on across resets and domains, and the step
            that triggers a reset has predicted before it. Defaults to 0.
    """

    #: Whether the method computes a loss and updates parameters.
    needs_grad: bool = True
    #: Whether the engine runs the sharpness-aware two-step update (SAR) with ``rho``.
    uses_sam: bool = False
    #: Whether the engine takes two gradients from the one forward (of :meth:`loss` and
    #: :meth:`second_loss`), lets :meth:`select_gradients` say what each tensor is updated with,
    #: and steps a fresh optimizer (DAT).
    uses_gradient_selection: bool = False
    #: What the method adapts, in words, for the message when a model has none of it.
    adapts: str = 'parameters'

    def __init__(self,
                 optim_wrapper: dict | None = None,
                 regularizers: Sequence[dict] = (),
                 single_value_bn: str = 'running',
                 reset_every: int = 0) -> None:
        if self.needs_grad and optim_wrapper is None:
            raise ValueError(f'{type(self).__name__} updates parameters and needs '
                             "optim_wrapper, e.g. dict(optimizer=dict(type='Adam', lr=7.5e-6))")
        if not self.needs_grad and (regularizers or optim_wrapper is not None):
            what = 'regularizers' if regularizers else 'an optim_wrapper'
            raise ValueError(f'{type(self).__name__} does not update the model, so {what} would '
                             'have no effect; use a gradient-based method such as Tent')
        if not isinstance(reset_every, int) or isinstance(reset_every, bool) or reset_every < 0:
            raise ValueError(f'{type(self).__name__}.reset_every must be an int >= 0 (0: never), '
                             f'got {reset_every!r}')
        if reset_every and not self.needs_grad:
            raise ValueError(f'{type(self).__name__} does not update the model, so '
                             'reset_every would have no effect')
        if single_value_bn not in SINGLE_VALUE_POLICIES:
            raise ValueError(f'{type(self).__name__}.single_value_bn must be one of '
                             f'{SINGLE_VALUE_POLICIES}, got {single_value_bn!r}')
        self.single_value_bn = single_value_bn
        self.reset_every = reset_every
        #: Steps taken since the method was built (the reset schedule counts them).
        self.steps = 0
        self.optim_wrapper_cfg = copy.deepcopy(optim_wrapper)
        self.regularizers = [build(TTA_REGULARIZERS, cfg, 'tta_method.regularizers[]')
                             for cfg in regularizers]
        self.optim_wrapper: OptimWrapper | None = None
        self.model: nn.Module | None = None
        self.param_names: list[str] = []
        self.logits_fn = None
        self.tap = None
        self._train_modules: list[nn.Module] = []
        self._adapted: list[nn.Parameter] = []
        self._saved: dict = {}

    def __repr__(self) -> str:
        regs = ', '.join(map(repr, self.regularizers))
        reset = f', reset_every={self.reset_every}' if self.reset_every else ''
        return f'{type(self).__name__}(regularizers=[{regs}]{reset})'

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def configured(self) -> bool:
        return self.model is not None

    # ------------------------------------------------------------------ life cycle
    def configure(self, model: nn.Module, logits_fn=None, tap=None) -> None:
        """Prepare ``model`` for adaptation and remember its source state for :meth:`reset`.

        Args:
            model (nn.Module): The model to adapt.
            logits_fn (Callable, optional): ``logits_fn(model, inputs)`` gives the classifier's
                logits of any model of this family (see ``StepContext``); methods that run
                models themselves at configure time (EATA's Fisher) need it.
            tap (Tap, optional): The tap on ``model``'s classifier, for methods that need the
                classifier's input features at configure time (RMT's source prototypes).
        """
        if self.model is not None:
            raise RuntimeError(f'{self.name} is already configured for a model; call release() '
                               'first')
        self._saved = dict(
            modes={m: m.training for m in model.modules()},
            requires_grad={p: p.requires_grad for p in model.parameters()},
            track={m: m.track_running_stats for m in model.modules()
                   if hasattr(m, 'track_running_stats')})
        self.model = model
        self.logits_fn = logits_fn
        self.tap = tap
        for reg in self.regularizers:  # a new source: anchors come from its classifier
            reg.reset(keep_anchors=False)
        self._train_modules = list(self.configure_model(model))
        self._saved['guards'] = guard_single_values(model, self._train_modules,
                                                    self.single_value_bn)
        params, self.param_names = self.collect_params(model)
        if self.needs_grad:
            if not params:
                raise NotAdaptableError(_nothing_to_adapt(model, self))
            self._adapted = list(params)
            for p in model.parameters():
                p.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            self.optim_wrapper = _build_optim_wrapper(self.param_groups(params, self.param_names),
                                                      self.optim_wrapper_cfg)
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in params)
        kinds = Counter(type(m).__name__ for n, m in model.named_modules()
                        if any(name.rsplit('.', 1)[0] == n for name in self.param_names))
        print_log(f'{self!r}: adapting {len(params)} tensors, {trainable}/{total} parameters '
                  f'({trainable / max(total, 1):.2%}) in {dict(kinds)}; batch-statistics '
                  f'layers: {len(self._train_modules)}', logger='current')
        print_log(f'{self.name} adapts: {", ".join(self.param_names) or "nothing"}',
                  logger='current', level=logging.DEBUG)
        self.snapshot_source()
        self.setup(model)

    def snapshot_source(self) -> None:
        """Take what :meth:`reset` returns to: the model's state and the optimizer's (again
        after a warm-up, as RMT's reference does); methods that never update have nothing to
        restore."""
        self._source_state = _clone_state(self.model.state_dict()) if self.needs_grad else None
        self._source_optim = (copy.deepcopy(self.optim_wrapper.state_dict())
                              if self.optim_wrapper is not None else None)

    def apply_modes(self) -> None:
        """Put the configured layers back in train mode and the adapted parameters back in the
        graph, after the runner called ``eval()`` (backbones with frozen stages, such as
        mmpretrain's ResNet in linear-probe configs, turn ``requires_grad`` off in ``train``)."""
        for module in self._train_modules:
            module.train()
        for param in self._adapted:
            param.requires_grad_(True)

    def single_value_fallbacks(self) -> dict[str, int]:
        """How many forwards of each BatchNorm layer fell back to its running statistics
        because its input held one value per channel (``single_value_bn='running'``)."""
        return {g.name: g.count for g in self._saved.get('guards', []) if g.count}

    def reset(self, optimizer: bool = True) -> None:
        """Return to the source: weights, buffers, optimizer, regularizers and method state.

        Args:
            optimizer (bool): Also return the optimizer to its fresh state (momentum, Adam's
                moments). SAR's model recovery keeps it, as its reference does. Defaults to
                True.
        """
        if self.model is None:
            return
        if self._source_state is not None:
            self.model.load_state_dict(self._source_state)
        if optimizer:
            self.reset_optimizer()
        elif self.optim_wrapper is not None:
            self.optim_wrapper.zero_grad()
        for reg in self.regularizers:
            reg.reset()
        self.reset_state()

    def end_step(self, stats: dict) -> None:
        """Count a step and apply the reset schedule (``reset_every``); the step calls it last,
        after the update, for every step it takes, skipped and dropped ones included. A reset
        is marked in ``stats`` (``scheduled_reset``)."""
        self.steps += 1
        if self.reset_every:
            due = self.steps % self.reset_every == 0
            if due:
                self.reset(optimizer=True)
            stats['scheduled_reset'] = float(due)

    def reset_optimizer(self) -> None:
        """Give the optimizer its fresh state, as if it had just been built (the reference
        segmentation code builds a new Adam for every domain visit)."""
        if self.optim_wrapper is not None:
            self.optim_wrapper.load_state_dict(copy.deepcopy(self._source_optim))
            self.optim_wrapper.zero_grad()

    def state_dict(self) -> dict:
        """What a resumed run needs besides the model's weights (which the caller saves).

        The optimizer, each regularizer's state and the method's own (:meth:`extra_state`).
        Only tensors and plain Python values, so that it loads with ``weights_only``.
        """
        return dict(
            optimizer=self.optim_wrapper.state_dict() if self.optim_wrapper is not None else None,
            regularizers=[reg.state_dict() if hasattr(reg, 'state_dict') else {}
                          for reg in self.regularizers],
            method=self.extra_state(),
            steps=self.steps)

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into a configured method."""
        if not self.configured:
            raise RuntimeError(f'{self.name}: configure the method before loading its state')
        if self.optim_wrapper is not None and state['optimizer'] is not None:
            self.optim_wrapper.load_state_dict(state['optimizer'])
        for reg, reg_state in zip(self.regularizers, state['regularizers']):
            if hasattr(reg, 'load_state_dict'):
                reg.load_state_dict(reg_state)
        self.load_extra_state(state['method'])
        self.steps = state.get('steps', 0)  # absent from states saved before the schedule

    def extra_state(self) -> dict:
        """The method's own state that evolves along the stream (moving averages, EMA
        teachers, random generators); empty for stateless methods."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state`."""

    def release(self) -> None:
        """Undo :meth:`configure`: modes, ``requires_grad`` and batch-statistics settings.

        The weights stay as adapted; call :meth:`reset` first to return to the source.
        """
        if self.model is None:
            return
        for module, mode in self._saved['modes'].items():
            module.training = mode
        for param, flag in self._saved['requires_grad'].items():
            param.requires_grad_(flag)
        for module, flag in self._saved['track'].items():
            module.track_running_stats = flag
        for guard in self._saved['guards']:
            guard.remove()
        self.model, self.optim_wrapper, self._train_modules, self._saved = None, None, [], {}
        self.tap = None
        self._adapted = []

    # ------------------------------------------------------------------ to override
    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        """Set modes for adaptation; return the modules that must stay in train mode."""
        return []

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        """The parameters to adapt and their names."""
        return [], []

    def param_groups(self, params: list[nn.Parameter], names: list[str]) -> list:
        """What the optimizer is built over: ``params`` (one group), or a list of param-group
        dicts when some parameters have options of their own (SVDP's prompt learning rate)."""
        return params

    def setup(self, model: nn.Module) -> None:
        """Build the method's own state once the model is configured (teachers, Fisher)."""

    def begin_domain(self, round_idx: int, domain_index: int) -> None:
        """A visit of a domain starts (``ContinualTestLoop`` calls it before the first batch of
        every (round, domain), configured or not yet): per-visit state of the method's own
        (DAT's ranking window, its learning rate per round). A resumed visit restores that
        state from :meth:`extra_state` instead."""

    def prepare(self, ctx: StepContext) -> Tensor | None:
        """Work done before the main forward, with gradients enabled (wrap what needs none in
        ``torch.no_grad()``): teachers and views whose results do not depend on the student.
        Returns the input the adapted model sees in its forward when the method changes it
        (SVDP's prompted image), else None."""
        return None

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        """The base loss of one step, from the main forward's tapped output."""
        raise NotImplementedError(f'{self.name} does not compute a loss')

    def second_loss(self, out: TapOutput, first: MethodLoss, ctx: StepContext) -> MethodLoss:
        """The loss at the perturbed weights of a sharpness-aware step (``uses_sam``: ``out``
        is the second forward's), or the second loss of the same forward
        (``uses_gradient_selection``)."""
        raise NotImplementedError(f'{self.name} has no second loss')

    def prediction(self, out: TapOutput, ctx: StepContext) -> Tensor | None:
        """The method's own prediction when it is not the adapted model's (CoTTA's teacher):
        logits at the model's output resolution, or None."""
        return None

    def select_gradients(self, first: list[Tensor | None],
                         second: list[Tensor | None]) -> list[Tensor | None]:
        """With ``uses_gradient_selection``: from the gradients of :meth:`loss` and of
        :meth:`second_loss` (one per adapted parameter, None where it got none), the gradient
        each parameter is updated with (None: not updated)."""
        raise NotImplementedError(f'{self.name} does not select gradients')

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        """Bookkeeping after the update (EMA teachers, resets); statistics of its own go into
        ``ctx.stats``."""

    def reset_state(self) -> None:
        """Forget the method's own state (moving averages, counters)."""


def _nothing_to_adapt(model: nn.Module, method: BaseTTAMethod) -> str:
    """Why ``method`` has nothing to adapt in ``model``, naming layers that look like norms but
    are of no type the toolkit recognises (``NORM_TYPES``)."""
    unknown = sorted({type(m).__name__ for m in model.modules()
                      if 'norm' in type(m).__name__.lower() and not isinstance(m, NORM_TYPES)})
    hint = (f'; its normalisation layers are of types the toolkit does not recognise: '
            f'{", ".join(unknown)}' if unknown else
            '; it has no normalisation layer (re-parameterised deploy models fuse theirs into '
            'their convolutions)')
    return (f'{type(model).__name__} cannot be adapted by {method.name}: it has none of the '
            f'{method.adapts} that {method.name} adapts{hint}')


def _build_optim_wrapper(params: list[nn.Parameter], cfg: dict) -> OptimWrapper:
    """An MMEngine optim wrapper over exactly ``params`` (``OptimWrapper``,
    ``AmpOptimWrapper``, ...)."""
    cfg = copy.deepcopy(cfg)
    for key in ('paramwise_cfg', 'constructor'):
        if key in cfg:
            raise ValueError(f'optim_wrapper.{key} is not supported for adaptation: the method '
                             'selects the parameters itself')
    if 'optimizer' not in cfg:
        raise KeyError("optim_wrapper needs an 'optimizer', e.g. "
                       "dict(optimizer=dict(type='Adam', lr=7.5e-6))")
    optimizer = OPTIMIZERS.build(dict(cfg.pop('optimizer'), params=params))
    cfg.setdefault('type', 'OptimWrapper')
    return OPTIM_WRAPPERS.build(dict(cfg, optimizer=optimizer))


def _clone_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
            for k, v in state.items()}


def valid_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` (N, *) over ``mask``; 0 (still differentiable) when nothing is
    selected."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1)



def at_positions(multiplier: Tensor, like: Tensor) -> Tensor:
    """A (N, *) multiplier at the tapped logits' positions, brought to the positions of a loss's
    terms ``like``: the same, or (N, h, w) resized to (N, H, W) by nearest neighbour (a loss
    taken at the input size, as CoTTA's)."""
    if multiplier.shape == like.shape:
        return multiplier.to(like.dtype)
    if multiplier.dim() == 3 and like.dim() == 3 and multiplier.size(0) == like.size(0):
        return F.interpolate(multiplier[:, None].to(like.dtype), size=like.shape[1:],
                             mode='nearest')[:, 0]
    raise ValueError(f'a multiplier of shape {tuple(multiplier.shape)} does not fit loss terms '
                     f'of shape {tuple(like.shape)}')


def build_method(cfg: dict | BaseTTAMethod, optim_wrapper: dict | None = None) -> BaseTTAMethod:
    """Build a method from its config; ``optim_wrapper`` is used when the config has none.

    Raises:
        KeyError: ``cfg['type']`` is not a registered method; the message lists the valid ones.
    """
    if isinstance(cfg, BaseTTAMethod):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    cls = lookup(TTA_METHODS, cfg.get('type'), 'tta_method.type')
    if cls.needs_grad and cfg.get('optim_wrapper') is None:
        cfg['optim_wrapper'] = copy.deepcopy(optim_wrapper)
    return build(TTA_METHODS, cfg, 'tta_method')
