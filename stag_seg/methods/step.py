"""One adaptation step: predict, then update once.

``batch -> method.prepare (teachers, views) -> forward with grad -> tap -> prediction kept ->
method loss + mask/weights -> regularizers on the same mask -> one backward -> optimizer step
-> method bookkeeping``.

The model wrappers call :func:`adapt_step` from their ``test_step``; it calls the method and
its regularizers, so it sits with them, below the models. Methods that define more forwards get
them through the :class:`~stag_seg.structures.StepContext` (DeYO's shuffled view, CoTTA's
teacher views). Two update rules take two backward passes: SAR's sharpness-aware update runs a
second forward and backward at the perturbed weights (:func:`sam_update`), and DAT takes two
gradients from the one forward and steps a fresh optimizer on the gradients it selects
(:func:`selective_update`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, TypeVar

import torch
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from ..dist import all_ranks, sync_gradients
from ..structures import MethodLoss, StepContext, TapOutput
from .base import BaseTTAMethod

__all__ = ['Step', 'adapt_step', 'sam_ascend', 'sam_descend', 'sam_update', 'selected_fraction',
           'selective_update', 'total_loss', 'update', 'warm_up']

T = TypeVar('T')


class Step(NamedTuple):
    """What :func:`adapt_step` returns.

    Attributes:
        result: What the forward returned, computed before the update (predict-then-update;
            callers detach it).
        prediction (Tensor | None): The method's own prediction when it makes one (CoTTA's
            teacher; logits at the model's output resolution), else None.
        stats (dict): The step's statistics (floats by name).
        nonfinite (str | None): What was not finite when the step was dropped (``'logits'``,
            ``'loss'``, ``'gradient'``), else None.
    """
    result: object
    prediction: Tensor | None
    stats: dict
    nonfinite: str | None = None


def adapt_step(method: BaseTTAMethod,
               ctx: StepContext,
               forward: Callable[[Tensor], T],
               check: Callable[[TapOutput, T], None] | None = None) -> Step:
    """Run ``forward`` once, then update the model once from what the tap recorded; last, the
    method counts the step and applies its reset schedule (``reset_every``).

    Args:
        method (BaseTTAMethod): A configured method.
        ctx (StepContext): The batch, the model family's forward, the tap.
        forward (Callable): Runs the model on a preprocessed batch (``ctx.inputs``, or what
            ``method.prepare`` made of it) and returns its predictions.
        check (Callable, optional): Called with the tap output and the predictions before the
            loss, to verify that the tapped layer is what the predictions come from.

    Returns:
        Step: The predictions ``forward`` made before the update, the method's own prediction
        (or None), the step's statistics and, for a dropped step, what was not finite.
    """
    if not method.needs_grad:
        with torch.no_grad():
            result = forward(ctx.inputs)
        ctx.output = result
        method.after_step(None, ctx)
        return Step(result, None, ctx.stats)
    step = _update_step(method, ctx, forward, check)
    method.end_step(step.stats)
    return step


def _update_step(method: BaseTTAMethod, ctx: StepContext, forward: Callable[[Tensor], T],
                 check: Callable[[TapOutput, T], None] | None) -> Step:
    """:func:`adapt_step` of a method that updates parameters, up to its bookkeeping."""
    # MMEngine's TestLoop runs test_step under torch.no_grad(); adaptation needs the graph of
    # this single forward, so gradients are switched back on here, and nowhere else.
    with torch.enable_grad():
        ctx.model_inputs = method.prepare(ctx)
        with ctx.tap.capture():
            result = forward(ctx.inputs if ctx.model_inputs is None else ctx.model_inputs)
        ctx.output = result
        out = ctx.tap.output()
        if ctx.valid is not None:
            out.valid = ctx.valid(out.logits)
        if check is not None:
            check(out, result)
        # a NaN or Inf never reaches the weights: such a step is dropped and counted
        # (``nonfinite``); every rank drops it when one has to
        if not all_ranks(bool(torch.isfinite(out.logits.detach()).all())):
            return _drop_nonfinite(method, ctx, result, 'logits')
        with torch.no_grad():
            prediction = method.prediction(out, ctx)
        base = method.loss(out, ctx)
        total, stats = total_loss(method, out, base)
        if not all_ranks(bool(torch.isfinite(total.detach()))):
            return _drop_nonfinite(method, ctx, result, 'loss', prediction)
        # ranks step together or not at all: a rank that selected nothing joins the others'
        # step with a zero gradient, otherwise the gradient averages would fall out of step
        base.skip = all_ranks(base.skip)
        if base.skip:
            method.optim_wrapper.zero_grad()
        elif method.uses_sam:
            sam_stats = sam_update(method, ctx, total, base)
            if sam_stats is None:
                return _drop_nonfinite(method, ctx, result, 'gradient', prediction)
            stats.update(sam_stats)
        elif method.uses_gradient_selection:
            selected = selective_update(method, ctx, out, total, base)
            if selected is None:
                return _drop_nonfinite(method, ctx, result, 'gradient', prediction)
            stats.update(selected)
        elif not update(method.optim_wrapper, total):
            return _drop_nonfinite(method, ctx, result, 'gradient', prediction)
    ctx.tap.clear()
    stats.update(loss=float(total.detach()), skipped=float(base.skip),
                 selected=selected_fraction(base.mask, (base.out or out).valid), nonfinite=0.0)
    ctx.stats = stats
    method.after_step(out, ctx)  # may add its own (SAR's moving average and resets)
    return Step(result, prediction, ctx.stats)


def _drop_nonfinite(method: BaseTTAMethod, ctx: StepContext, result: T, where: str,
                    prediction: Tensor | None = None) -> Step:
    """End a step whose ``where`` (logits, loss or gradient) is not finite: no update at all."""
    method.optim_wrapper.zero_grad()
    ctx.tap.clear()
    ctx.stats = dict(nonfinite=1.0, skipped=1.0)
    return Step(result, prediction, ctx.stats, where)


def selected_fraction(mask: Tensor | None, valid: Tensor | None) -> float:
    """The share of the valid samples or pixels a method's loss used (1 without a mask)."""
    if mask is None:
        return 1.0
    if valid is not None and valid.shape == mask.shape:
        count = valid.sum()
        return float((mask.bool() & valid.bool()).sum() / count) if count else 0.0
    return float(mask.float().mean())


def total_loss(method: BaseTTAMethod, out: TapOutput,
               base: MethodLoss) -> tuple[Tensor, dict[str, float]]:
    """The method's loss plus each regularizer's, on the method's own mask and weights (and
    its own forward, ``base.out``, when it took the loss on another than ``out``).

    A regularizer that reweights (it has ``multiplier()`` and returns one, as STAG with
    ``mode='reweight'``) first multiplies the method's per-position terms (``base.reweight``);
    several multiply together.

    Raises:
        TypeError: a regularizer reweights a method whose loss has no per-position terms.
    """
    multiplier, stats = None, dict(base.stats)
    out = base.out or out
    for reg in method.regularizers:
        fn = getattr(reg, 'multiplier', None)
        found, reg_stats = fn(out.logits, out.weight, out.bias, out.features, base.mask,
                              base.weights) if fn is not None else (None, {})
        if found is not None:
            multiplier = found if multiplier is None else multiplier * found
            stats.update(reg_stats)
    if multiplier is not None:
        if base.reweight is not None:
            base.loss = base.reweight(multiplier)
        elif not base.skip:  # a skipped step (RoTTA between updates) has no terms to weigh
            raise TypeError(f'{method!r}: its loss has no per-position terms to reweight (a '
                            'regularizer with mode=\'reweight\'); use mode=\'loss\'')
    total = base.loss
    for reg in method.regularizers:
        reg_loss, reg_stats = reg(out.logits, out.weight, out.bias, out.features, base.mask,
                                  base.weights)
        total = total + reg_loss
        stats.update(reg_stats)
    return total, stats


def warm_up(method: BaseTTAMethod, steps: int, loss_fn: Callable[[int], Tensor],
            after: Callable[[], None] | None = None) -> int:
    """Update ``steps`` times before the stream, as RMT warms its mean teacher up on source
    images: at step ``i`` every parameter group's learning rate is ``(i + 1) / steps`` of its
    own, ``loss_fn(i)`` is backward-stepped by :func:`update` and ``after()`` runs (the EMA);
    the rates are put back at the end.

    Returns:
        int: The steps dropped for a gradient that was not finite.
    """
    groups = method.optim_wrapper.param_groups
    rates = [group['lr'] for group in groups]
    dropped = 0
    with torch.enable_grad():
        for i in range(steps):
            for group, rate in zip(groups, rates):
                group['lr'] = rate * (i + 1) / steps
            if not update(method.optim_wrapper, loss_fn(i)):
                dropped += 1
            if after is not None:
                after()
    for group, rate in zip(groups, rates):
        group['lr'] = rate
    return dropped


def update(optim_wrapper: OptimWrapper, loss: Tensor) -> bool:
    """``OptimWrapper.update_params`` with the gradients averaged over ranks before the step.

    MMEngine's ``MMDistributedDataParallel.test_step`` bypasses DDP, so nothing else would
    synchronise them: every rank would adapt its own copy of the model on its own share of the
    stream. With one process this is exactly ``update_params``. A gradient with a NaN or Inf
    is dropped without a step; returns whether the step was taken.
    """
    if not loss.requires_grad:  # nothing selected on this rank: a zero gradient to share
        loss = loss + sum(p.sum() for p in _params(optim_wrapper)) * 0
    optim_wrapper.backward(optim_wrapper.scale_loss(loss))
    if optim_wrapper.should_update():
        sync_gradients(_params(optim_wrapper))
        if not all_ranks(gradients_finite(_params(optim_wrapper), optim_wrapper)):
            optim_wrapper.zero_grad()
            return False
        optim_wrapper.step()
        optim_wrapper.zero_grad()
    return True


def gradients_finite(params: list[nn.Parameter],
                     optim_wrapper: OptimWrapper | None = None) -> bool:
    """No NaN or Inf in any gradient.

    Always True under mixed precision (``AmpOptimWrapper``): there an overflow of the scaled
    gradients is normal, and the loss scaler skips that step and lowers its scale itself.
    """
    if optim_wrapper is not None and hasattr(optim_wrapper, 'loss_scaler'):
        return True
    return all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)


def sam_update(method: BaseTTAMethod, ctx: StepContext, loss: Tensor,
               first: MethodLoss) -> dict[str, float] | None:
    """Sharpness-aware update (Foret et al., ICLR 2021), as SAR uses it.

    1. backward at ``w``; ``e = rho * g / ||g||`` over all adapted parameters; ascend to
       ``w + e``;
    2. forward the same batch again, ``method.second_loss`` (+ regularizers), backward at
       ``w + e``;
    3. restore ``w``, then the base optimizer steps with the gradient from ``w + e``.

    Gradients are averaged over ranks after each backward. Returns the second loss's stats
    (prefixed ``sam2_``), or None when a gradient or the second loss was not finite (no step;
    the weights are back at ``w``).
    """
    optim_wrapper = method.optim_wrapper
    params = _params(optim_wrapper)
    optim_wrapper.backward(loss)
    sync_gradients(params)
    if not all_ranks(gradients_finite(params, optim_wrapper)):
        optim_wrapper.zero_grad()
        return None
    saved = sam_ascend(params, method.rho)
    optim_wrapper.zero_grad()
    out = ctx.forward()
    second = method.second_loss(out, first, ctx)
    total, stats = total_loss(method, out, second)
    optim_wrapper.backward(total)
    sync_gradients(params)
    sam_descend(params, saved)
    if not all_ranks(gradients_finite(params, optim_wrapper)
                     and bool(torch.isfinite(total.detach()))):
        optim_wrapper.zero_grad()  # the weights are already back at w: nothing changed
        return None
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    return {f'sam2_{k}': v for k, v in stats.items()} | {'sam2_loss': float(total.detach())}


def selective_update(method: BaseTTAMethod, ctx: StepContext, out: TapOutput, loss: Tensor,
                     first: MethodLoss) -> dict[str, float] | None:
    """Two gradients from one forward, the method's choice of what each tensor is updated with,
    and one step of a fresh optimizer (DAT's update).

    1. backward of ``loss`` (the method's :meth:`loss` plus regularizers), keeping the graph;
    2. backward of ``method.second_loss`` (plus regularizers) on the same forward;
    3. ``method.select_gradients(first, second)`` gives each parameter's gradient (None: not
       updated);
    4. the optimizer's state is reset (``method.reset_optimizer``: fresh moments, as a newly
       built optimizer; not when ``method.fresh_optimizer`` is False) and it steps once on
       those gradients.

    Gradients are averaged over ranks after each backward. Returns the second loss's stats
    (prefixed ``second_``), or None when a loss or a gradient was not finite (no step).
    """
    optim_wrapper = method.optim_wrapper
    if hasattr(optim_wrapper, 'loss_scaler'):
        raise ValueError(f'{method.name} selects tensors by the size of their gradients, which '
                         'loss scaling would change: use OptimWrapper, not AmpOptimWrapper')
    params = _params(optim_wrapper)
    second = method.second_loss(out, first, ctx)
    second_total, stats = total_loss(method, out, second)
    if not all_ranks(bool(torch.isfinite(second_total.detach()))):
        optim_wrapper.zero_grad()
        return None
    grads = []
    for total, retain in ((loss, True), (second_total, False)):
        optim_wrapper.zero_grad()
        optim_wrapper.backward(total, retain_graph=retain)
        sync_gradients(params)
        if not all_ranks(gradients_finite(params, optim_wrapper)):
            optim_wrapper.zero_grad()
            return None
        grads.append([p.grad for p in params])
        for param in params:  # taken out, not zeroed in place: the list keeps them
            param.grad = None
    chosen = method.select_gradients(*grads)
    if getattr(method, 'fresh_optimizer', True):
        method.reset_optimizer()  # a fresh state: the update of a newly built optimizer
    for param, grad in zip(params, chosen):
        param.grad = grad
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    return {f'second_{k}': v for k, v in stats.items()} | {
        'second_loss': float(second_total.detach())}


@torch.no_grad()
def sam_ascend(params: list[nn.Parameter], rho: float) -> list[Tensor]:
    """Move to ``w + rho * g / ||g||`` (one norm over all parameters); return copies of ``w``."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = rho / (norm + 1e-12)
    saved = [p.detach().clone() for p in params]
    for param, grad in zip(params, grads):
        param.add_(grad * scale)
    return saved


@torch.no_grad()
def sam_descend(params: list[nn.Parameter], saved: list[Tensor]) -> None:
    """Put back the weights :func:`sam_ascend` saved (exactly), before the base step."""
    for param, value in zip(params, saved):
        param.copy_(value)


def _params(optim_wrapper: OptimWrapper) -> list[nn.Parameter]:
    return [p for group in optim_wrapper.param_groups for p in group['params']]
