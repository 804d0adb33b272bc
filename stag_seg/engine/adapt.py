"""One adaptation step, shared by every model wrapper and hook: predict, then update once.

``batch -> forward with grad -> tap -> prediction kept -> method loss + mask/weights ->
regularizers on the same mask -> one backward -> optimizer step -> method bookkeeping``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

import torch
from torch import Tensor

if TYPE_CHECKING:  # the models import this module
    from ..methods.base import BaseTTAMethod
    from ..models.tap import ClassifierTap, TapOutput

__all__ = ['adapt_step']

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
        method.optim_wrapper.update_params(total)
    tap.clear()
    stats['loss'] = float(total.detach())
    method.last_stats = stats
    method.after_step(out)
    return result
