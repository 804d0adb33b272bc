"""Per-(round, domain) bookkeeping, the results document and reports."""
from .progress import COUNTED_STATS, DomainProgress
from .records import RESULTS_KEYS, RunningMetric, StreamResults, validate_results, versions
from .report import (check_same_stream, compare_csv, compare_markdown, compare_rows,
                     format_records, load_results, plot_results, run_labels, write_results)
from .results import results_document, write_partial, write_run

__all__ = [
    'COUNTED_STATS', 'DomainProgress', 'RESULTS_KEYS', 'RunningMetric', 'StreamResults',
    'check_same_stream', 'compare_csv', 'compare_markdown', 'compare_rows', 'format_records',
    'load_results', 'plot_results', 'run_labels', 'results_document', 'validate_results',
    'versions', 'write_partial', 'write_results', 'write_run',
]
