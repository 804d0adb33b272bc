"""One adaptation step, shared by every model wrapper and hook: predict, then update once.

``batch -> forward with grad -> tap -> prediction kept -> method loss + mask/weights ->
regularizers on the same mask -> one backward -> optimizer step -> method bookkeeping``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

import torch
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor

if TYPE_CHECKING:  # the models import this module
    from mmengine.optim import OptimWrapper

    from ..methods.base import BaseTTAMethod
    from ..models.tap import ClassifierTap, TapOutput

__all__ = ['adapt_step', 'sync_gradients', 'update']

T = TypeVar('T')


def adapt_step(method: BaseTTAMethod,
               tap: ClassifierTap,
               forward: Callable[[], T],
               valid: Callable[[Tensor], Tensor | None] | None = None,
               check: Callable[['TapOutput', T], None] | None = None) -> T:
    """Run ``forward`` once, then update the model once from what the tap recorded.

    Args:
        method (BaseTTAMethod): A configured method.
        tap (ClassifierTap): The tap on the model's final classifier.
        forward (Callable): Runs the model and returns its predictions (e.g. logits).
        valid (Callable, optional): Maps the tapped logits (N, C, *) to their padding mask.
        check (Callable, optional): Called with the tap output and the predictions before the
            loss, to verify that the tapped layer is what the predictions come from.

    Returns:
        What ``forward`` returned, computed before the update (predict-then-update). Callers
        detach it.
    """
    if not method.needs_grad:
        with torch.no_grad():
            result = forward()
        method.after_step(None)
        method.last_stats = {}
        return result
    # MMEngine's TestLoop runs test_step under torch.no_grad(); adaptation needs the graph of
    # this single forward, so gradients are switched back on here, and nowhere else.
    with torch.enable_grad():
        with tap.capture():
            result = forward()
        out = tap.output()
        if valid is not None:
            out.valid = valid(out.logits)
        if check is not None:
            check(out, result)
        base = method.loss(out)
        total, stats = base.loss, dict(base.stats)
        for reg in method.regularizers:
            reg_loss, reg_stats = reg(out.logits, out.weight, out.bias, out.features, base.mask,
                                      base.weights)
            total = total + reg_loss
            stats.update(reg_stats)
        update(method.optim_wrapper, total)
    tap.clear()
    stats['loss'] = float(total.detach())
    method.last_stats = stats
    method.after_step(out)
    return result


def update(optim_wrapper: 'OptimWrapper', loss: Tensor) -> None:
    """``OptimWrapper.update_params`` with the gradients averaged over ranks before the step.

    MMEngine's ``MMDistributedDataParallel.test_step`` bypasses DDP, so nothing else would
    synchronise them: every rank would adapt its own copy of the model on its own share of the
    stream. With one process this is exactly ``update_params``.
    """
    optim_wrapper.backward(optim_wrapper.scale_loss(loss))
    if optim_wrapper.should_update():
        sync_gradients([p for group in optim_wrapper.param_groups for p in group['params']])
        optim_wrapper.step()
        optim_wrapper.zero_grad()


def sync_gradients(params: list[torch.nn.Parameter]) -> None:
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
