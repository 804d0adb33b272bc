"""Per-(round, domain) bookkeeping and reports; a run's config and the benchmark suites."""
from .benchmark import (OPTIONAL_PARTS, Run, SuiteError, build_run_config, load_suite,
                        plan_runs, rounds_table, run_config, run_suite, select_rows,
                        settings_table)
from .configs import (TEMPLATE_KEYS, build_config, check_options, merge_overlays,
                      prepare_config)
from .records import RESULTS_KEYS, RunningMetric, StreamResults, validate_results, versions
from .report import (check_same_stream, compare_csv, compare_markdown, compare_rows,
                     format_records, load_results, plot_results, run_labels, write_results)

__all__ = [
    'OPTIONAL_PARTS', 'RESULTS_KEYS', 'Run', 'RunningMetric', 'StreamResults', 'SuiteError',
    'TEMPLATE_KEYS', 'build_config', 'build_run_config', 'check_options', 'check_same_stream',
    'compare_csv', 'compare_markdown', 'compare_rows', 'format_records', 'load_results',
    'load_suite', 'merge_overlays', 'plan_runs', 'plot_results', 'prepare_config', 'rounds_table',
    'run_config', 'run_labels', 'run_suite', 'select_rows', 'settings_table',
    'validate_results', 'versions', 'write_results',
]
