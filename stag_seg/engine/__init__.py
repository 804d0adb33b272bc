"""The loop that drives a stream, and the hooks that adapt, guard, measure and draw inside any
MM test loop."""
from .continual_loop import ContinualTestLoop
from .guards import CollapseGuard, CollapseGuardHook
from .lr_scaling import scaled_lr
from .show_hook import TTAShowHook
from .stats_hook import TTAStatsHook
from .tta_hook import STAGHook, TTAHook

__all__ = ['CollapseGuard', 'CollapseGuardHook', 'ContinualTestLoop', 'STAGHook', 'TTAHook',
           'TTAShowHook', 'TTAStatsHook', 'scaled_lr']
