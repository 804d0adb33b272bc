"""Source: the pre-trained model, never updated (the reference every method is compared with)."""
from __future__ import annotations

from ..registry import TTA_METHODS
from .base import BaseTTAMethod

__all__ = ['Source']


@TTA_METHODS.register_module()
class Source(BaseTTAMethod):
    """No adaptation: eval mode, running statistics, no gradient, bit-identical weights."""

    needs_grad = False
