"""The adaptation step and the loops that drive it."""
from .adapt import adapt_step
from .continual_loop import ContinualTestLoop

__all__ = ['ContinualTestLoop', 'adapt_step']
