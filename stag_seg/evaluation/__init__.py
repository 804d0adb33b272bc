"""What a run reports: per-(round, domain) bookkeeping (``progress``), the records and the schema
of their document (``stream_results``), the files a run writes and reads back
(``results_files``), tables and figures (``tables``) and prediction panels (``visualize``)."""
from .progress import COUNTED_STATS, DomainProgress
from .results_files import (load_results, results_document, write_partial, write_results,
                            write_run)
from .stream_results import RESULTS_KEYS, RunningMetric, StreamResults, validate_results, versions
from .tables import (check_same_stream, compare_csv, compare_markdown, compare_rows,
                     comparison_entry, format_records, plot_results, run_label, run_labels,
                     write_comparison)

__all__ = [
    'COUNTED_STATS', 'DomainProgress', 'RESULTS_KEYS', 'RunningMetric', 'StreamResults',
    'check_same_stream', 'compare_csv', 'compare_markdown', 'compare_rows', 'comparison_entry',
    'format_records',
    'load_results', 'plot_results', 'results_document', 'run_label', 'run_labels',
    'validate_results', 'versions', 'write_comparison', 'write_partial', 'write_results',
    'write_run',
]
