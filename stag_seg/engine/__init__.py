"""The loop that drives a stream, the hooks that adapt, guard, measure and draw inside any MM
test loop, a run's config and the benchmark suites."""
from .benchmark import (OPTIONAL_PARTS, Run, SuiteError, build_run_config, load_suite, plan_runs,
                        rounds_table, run_config, run_suite, select_rows, settings_table)
from .continual_loop import ContinualTestLoop
from .guards import CollapseGuard, CollapseGuardHook
from .lr_scaling import scaled_lr
from .run_config import (TEMPLATE_KEYS, build_config, check_options, merge_overlays,
                         prepare_config)
from .show_hook import TTAShowHook
from .stats_hook import TTAStatsHook
from .tta_hook import STAGHook, TTAHook

__all__ = [
    'OPTIONAL_PARTS', 'TEMPLATE_KEYS', 'CollapseGuard', 'CollapseGuardHook', 'ContinualTestLoop',
    'Run', 'STAGHook', 'SuiteError', 'TTAHook', 'TTAShowHook', 'TTAStatsHook', 'build_config',
    'build_run_config', 'check_options', 'load_suite', 'merge_overlays', 'plan_runs',
    'prepare_config', 'rounds_table', 'run_config', 'run_suite', 'scaled_lr', 'select_rows',
    'settings_table',
]
