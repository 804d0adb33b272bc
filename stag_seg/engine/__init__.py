"""The adaptation step, the loop that drives a stream, and the hooks for stock test loops."""
from .adapt import adapt_step
from .continual_loop import ContinualTestLoop
from .lr_scaling import scaled_lr
from .show_hook import TTAShowHook
from .tta_hook import STAGHook, TTAHook

__all__ = ['ContinualTestLoop', 'STAGHook', 'TTAHook', 'TTAShowHook', 'adapt_step',
           'scaled_lr']
