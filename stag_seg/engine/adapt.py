"""One adaptation step, shared by every model wrapper and hook: predict, then update once.

``batch -> forward with grad -> tap -> prediction kept -> method loss + mask/weights ->
regularizers on the same mask -> one backward -> optimizer step -> method bookkeeping``.

Methods that define more forwards get them through the :class:`StepContext` (DeYO's shuffled
view, CoTTA's teacher views); SAR's sharpness-aware update runs a second forward and backward at
the perturbed weights (:func:`sam_update`), the only step with two backward passes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor, nn

if TYPE_CHECKING:  # the models import this module
    from mmengine.optim import OptimWrapper

    from ..methods.base import BaseTTAMethod, MethodLoss
    from ..models.tap import ClassifierTap, TapOutput

__all__ = ['StepContext', 'adapt_step', 'sam_update', 'sync_gradients', 'update']

T = TypeVar('T')


@dataclass
class StepContext:
    """What a method may use besides the tapped output of the main forward.

    Attributes:
        inputs (Tensor): The preprocessed batch, (N, 3, H, W).
        model (nn.Module): The model being adapted.
        logits_fn (Callable): ``logits_fn(model, inputs)`` runs any model of this family to its
            classifier's logits: (N, C, h, w) at the decode head's resolution for segmentors,
            (N, C) for classifiers.
        tap (ClassifierTap | None): The tap on ``model``'s classifier.
        valid (Callable | None): Maps logits of ``inputs`` to their padding mask.
        metas (list[dict] | None): Segmentors: each image's meta information (``ori_shape``,
            ``img_shape``, padding), copies the method may read.
        output (Any): What the main forward returned, set before the method's loss:
            segmentors' (N, C, H, W) logits at the input size (the prediction that is scored,
            before it is resized), classifiers' data samples.
        state (dict): Scratch space for one step (e.g. CoTTA's pseudo-labels).
    """
    inputs: Tensor
    model: nn.Module
    logits_fn: Callable[[nn.Module, Tensor], Tensor]
    tap: 'ClassifierTap | None' = None
    valid: Callable[[Tensor], Tensor | None] | None = None
    metas: list[dict] | None = None
    output: Any = None
    state: dict = field(default_factory=dict)

    def original_size(self) -> tuple[int, int]:
        """The size the predictions are scored at: the batch's one ``ori_shape``.

        Raises:
            ValueError: no metas, images of different original sizes, or padded images
                (their content would have to be cropped first).
        """
        if not self.metas:
            raise ValueError('the loss at the original resolution needs the images\' meta '
                             'information (ori_shape); this model family has none')
        sizes = {tuple(m['ori_shape'][:2]) for m in self.metas}
        padded = [m for m in self.metas
                  if any(m.get('img_padding_size', m.get('padding_size', [0, 0, 0, 0])))]
        if len(sizes) != 1 or padded:
            raise ValueError('the loss at the original resolution needs one original size per '
                             f'batch and no padding, got sizes {sorted(sizes)} and '
                             f'{len(padded)} padded images; use batch size 1 (the reference '
                             "protocol) or resolution='decoder'")
        return sizes.pop()

    def at_original_size(self, logits: Tensor) -> Tensor:
        """(N, C, h, w) logits of ``inputs`` (any resolution) at :meth:`original_size`:
        bilinear, in one resize, as the CoTTA segmentation code resizes its decoder logits to
        the label size."""
        size = self.original_size()
        if tuple(logits.shape[2:]) == size:
            return logits
        align = bool(getattr(self.model, 'align_corners', False))
        return F.interpolate(logits, size=size, mode='bilinear', align_corners=align)

    def forward(self, inputs: Tensor | None = None) -> 'TapOutput':
        """Run the adapted model on ``inputs`` (default: the batch) and return the tapped output,
        in the graph when gradients are enabled."""
        x = self.inputs if inputs is None else inputs
        with self.tap.capture():
            self.logits_fn(self.model, x)
        out = self.tap.output()
        if inputs is None and self.valid is not None:
            out.valid = self.valid(out.logits)
        return out


def adapt_step(method: 'BaseTTAMethod',
               ctx: StepContext,
               forward: Callable[[], T],
               check: Callable[['TapOutput', T], None] | None = None) -> tuple[T, Tensor | None]:
    """Run ``forward`` once, then update the model once from what the tap recorded.

    Args:
        method (BaseTTAMethod): A configured method.
        ctx (StepContext): The batch, the model family's forward, the tap.
        forward (Callable): Runs the model and returns its predictions.
        check (Callable, optional): Called with the tap output and the predictions before the
            loss, to verify that the tapped layer is what the predictions come from.

    Returns:
        tuple: What ``forward`` returned, computed before the update (predict-then-update;
        callers detach it), and the method's own prediction when it makes one (CoTTA's teacher;
        logits at the model's output resolution) or None.
    """
    if not method.needs_grad:
        with torch.no_grad():
            result = forward()
        ctx.output = result
        method.after_step(None, ctx)
        method.last_stats = {}
        return result, None
    # MMEngine's TestLoop runs test_step under torch.no_grad(); adaptation needs the graph of
    # this single forward, so gradients are switched back on here, and nowhere else.
    with torch.enable_grad():
        with ctx.tap.capture():
            result = forward()
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
        elif not update(method.optim_wrapper, total):
            return _drop_nonfinite(method, ctx, result, 'gradient', prediction)
    ctx.tap.clear()
    stats.update(loss=float(total.detach()), skipped=float(base.skip),
                 selected=selected_fraction(base.mask, out.valid), nonfinite=0.0)
    method.last_stats = stats
    method.after_step(out, ctx)
    return result, prediction


def _drop_nonfinite(method: 'BaseTTAMethod', ctx: StepContext, result: T, where: str,
                    prediction: Tensor | None = None) -> tuple[T, Tensor | None]:
    """End a step whose ``where`` (logits, loss or gradient) is not finite: no update at all."""
    method.optim_wrapper.zero_grad()
    ctx.tap.clear()
    method.last_stats = dict(nonfinite=1.0, skipped=1.0)
    method.last_nonfinite = where
    return result, prediction


def selected_fraction(mask: Tensor | None, valid: Tensor | None) -> float:
    """The share of the valid samples or pixels a method's loss used (1 without a mask)."""
    if mask is None:
        return 1.0
    if valid is not None and valid.shape == mask.shape:
        count = valid.sum()
        return float((mask.bool() & valid.bool()).sum() / count) if count else 0.0
    return float(mask.float().mean())


def total_loss(method: 'BaseTTAMethod', out: 'TapOutput',
               base: 'MethodLoss') -> tuple[Tensor, dict[str, float]]:
    """The method's loss plus each regularizer's, on the method's own mask and weights."""
    total, stats = base.loss, dict(base.stats)
    for reg in method.regularizers:
        reg_loss, reg_stats = reg(out.logits, out.weight, out.bias, out.features, base.mask,
                                  base.weights)
        total = total + reg_loss
        stats.update(reg_stats)
    return total, stats


def update(optim_wrapper: 'OptimWrapper', loss: Tensor) -> bool:
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


def gradients_finite(params: list[nn.Parameter], optim_wrapper: 'OptimWrapper' = None) -> bool:
    """No NaN or Inf in any gradient.

    Always True under mixed precision (``AmpOptimWrapper``): there an overflow of the scaled
    gradients is normal, and the loss scaler skips that step and lowers its scale itself.
    """
    if optim_wrapper is not None and hasattr(optim_wrapper, 'loss_scaler'):
        return True
    return all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)


def sam_update(method: 'BaseTTAMethod', ctx: StepContext, loss: Tensor,
               first: 'MethodLoss') -> dict[str, float] | None:
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


def _params(optim_wrapper: 'OptimWrapper') -> list[nn.Parameter]:
    return [p for group in optim_wrapper.param_groups for p in group['params']]
