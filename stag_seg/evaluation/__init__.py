"""Per-(round, domain) bookkeeping and reports."""
from .records import RESULTS_KEYS, RunningMetric, StreamResults, validate_results, versions
from .report import (compare_markdown, format_records, load_results, plot_results,
                     write_results)

__all__ = [
    'RESULTS_KEYS', 'RunningMetric', 'StreamResults', 'compare_markdown', 'format_records',
    'load_results', 'plot_results', 'validate_results', 'versions', 'write_results',
]
