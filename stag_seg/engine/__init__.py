"""The loop that drives a stream, the hooks that adapt, guard, measure and draw inside any MM
test loop, and a run's config (overlays, then the seed and learning-rate rules)."""
from .configuration import (TEMPLATE_KEYS, build_config, check_options, merge_overlays,
                            prepare_config)
from .continual_loop import ContinualTestLoop
from .guards import CollapseGuard, CollapseGuardHook
from .lr_scaling import scaled_lr
from .show_hook import TTAShowHook
from .stats_hook import TTAStatsHook
from .tta_hook import STAGHook, TTAHook

__all__ = [
    'TEMPLATE_KEYS', 'CollapseGuard', 'CollapseGuardHook', 'ContinualTestLoop', 'STAGHook',
    'TTAHook', 'TTAShowHook', 'TTAStatsHook', 'build_config', 'check_options', 'merge_overlays',
    'prepare_config', 'scaled_lr',
]
