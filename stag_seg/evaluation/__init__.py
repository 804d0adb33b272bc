"""Per-(round, domain) bookkeeping and reports."""
from .records import RESULTS_KEYS, RunningMetric, StreamResults, validate_results, versions
from .report import (check_same_stream, compare_csv, compare_markdown, compare_rows,
                     format_records, load_results, plot_results, run_labels, write_results)

__all__ = [
    'RESULTS_KEYS', 'RunningMetric', 'StreamResults', 'check_same_stream', 'compare_csv',
    'compare_markdown', 'compare_rows', 'format_records', 'load_results', 'plot_results',
    'run_labels', 'validate_results', 'versions', 'write_results',
]
