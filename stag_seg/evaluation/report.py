"""Write and compare results: ``tta_results.{json,csv,md,png}`` and side-by-side tables."""
from __future__ import annotations

import csv
import json
import os
import os.path as osp
from typing import Sequence

from .records import validate_results

__all__ = ['compare_markdown', 'format_records', 'load_results', 'plot_results',
           'write_results']


def _run_name(doc: dict) -> str:
    return '+'.join([doc['method'], *doc.get('regularizers', [])])


def format_records(records: Sequence[dict], metric: str) -> str:
    """Markdown table of one run: a row per round, a column per domain, then the mean."""
    domains = list(dict.fromkeys(r['domain'] for r in records))
    rounds = sorted({r['round'] for r in records})
    value = {(r['round'], r['domain']): r[metric] for r in records}
    lines = ['| round | ' + ' | '.join(domains) + ' | mean |',
             '|---|' + '---:|' * (len(domains) + 1)]
    for rnd in rounds:
        row = [value.get((rnd, d), float('nan')) for d in domains]
        lines.append(f'| {rnd} | ' + ' | '.join(f'{v:.2f}' for v in row)
                     + f' | {sum(row) / len(row):.2f} |')
    per_domain = [sum(value[(r, d)] for r in rounds if (r, d) in value)
                  / max(sum((r, d) in value for r in rounds), 1) for d in domains]
    overall = sum(value.values()) / max(len(value), 1)
    lines.append('| mean | ' + ' | '.join(f'{v:.2f}' for v in per_domain)
                 + f' | **{overall:.2f}** |')
    return '\n'.join(lines)


def write_results(doc: dict, out_dir: str, stem: str = 'tta_results') -> list[str]:
    """Write ``doc`` (validated first) as JSON, CSV, markdown and a PNG plot; return the paths."""
    validate_results(doc)
    os.makedirs(out_dir, exist_ok=True)
    base = osp.join(out_dir, stem)
    metric = doc['metric']
    with open(base + '.json', 'w') as f:
        json.dump(doc, f, indent=2)
    with open(base + '.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['round', 'domain', 'num_samples', metric, 'seconds'])
        for rec in doc['records']:
            writer.writerow([rec['round'], rec['domain'], rec['num_samples'],
                             f'{rec[metric]:.4f}', f'{rec.get("seconds", 0.0):.3f}'])
    with open(base + '.md', 'w') as f:
        f.write(f'# {_run_name(doc)}: {metric} along the stream\n\n')
        f.write(f'config: `{doc["config"]}`, checkpoint: `{doc["checkpoint"]}`, seed: '
                f'{doc["seed"]}\n\n')
        f.write(format_records(doc['records'], metric) + '\n\n')
        f.write(f'mean {metric}: {doc["mean"]:.2f}; {doc["images_per_s"]:.2f} images/s\n')
    plot_results([doc], base + '.png')
    return [base + ext for ext in ('.json', '.csv', '.md', '.png')]


def plot_results(docs: Sequence[dict], path: str, labels: Sequence[str] | None = None) -> str:
    """One line per run: the metric of each (round, domain) in stream order."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = list(labels) if labels else [_run_name(d) for d in docs]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(docs[0]['records']) + 2), 3.6))
    for doc, label in zip(docs, labels):
        ax.plot(range(len(doc['records'])), [r[doc['metric']] for r in doc['records']],
                marker='o', markersize=3, label=f'{label} (mean {doc["mean"]:.1f})')
    ref = docs[0]['records']
    ax.set_xticks(range(len(ref)))
    ax.set_xticklabels([r['domain'] for r in ref], rotation=60, fontsize=7)
    for i, rec in enumerate(ref):
        if i and rec['round'] != ref[i - 1]['round']:
            ax.axvline(i - 0.5, color='grey', lw=0.6, ls='--')
    ax.set_ylabel(docs[0]['metric'])
    ax.set_title(f'{docs[0]["metric"]} per (round, domain) along the stream', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_results(path: str) -> dict:
    """Read a ``tta_results.json`` and check its schema."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'results file not found: {path}')
    with open(path) as f:
        doc = json.load(f)
    try:
        validate_results(doc)
    except ValueError as err:
        raise ValueError(f'{path}: {err}') from None
    return doc


def compare_markdown(docs: Sequence[dict], labels: Sequence[str] | None = None) -> str:
    """Runs side by side: the mean per round, the overall mean and images/s, per run.

    Raises:
        ValueError: the runs were made on different streams (domains, rounds or metric).
    """
    if not docs:
        raise ValueError('nothing to compare')
    ref = docs[0]
    for doc in docs[1:]:
        for key in ('metric', 'rounds', 'domains'):
            if doc[key] != ref[key]:
                raise ValueError(f'cannot compare results of different streams: {key} '
                                 f'{doc[key]!r} != {ref[key]!r}')
    labels = list(labels) if labels else [_run_name(d) for d in docs]
    metric, rounds = ref['metric'], ref['rounds']
    header = ['run'] + [f'round {r}' for r in range(1, rounds + 1)] + [f'mean {metric}',
                                                                         'images/s']
    lines = ['| ' + ' | '.join(header) + ' |', '|---|' + '---:|' * (len(header) - 1)]
    for doc, label in zip(docs, labels):
        per_round = []
        for rnd in range(1, rounds + 1):
            vals = [r[metric] for r in doc['records'] if r['round'] == rnd]
            per_round.append(sum(vals) / len(vals))
        lines.append(f'| {label} | ' + ' | '.join(f'{v:.2f}' for v in per_round)
                     + f' | {doc["mean"]:.2f} | {doc["images_per_s"]:.2f} |')
    detail = ['', f'{metric} per (round, domain):', '',
              '| run | ' + ' | '.join(f'r{r["round"]} {r["domain"]}' for r in ref['records'])
              + ' |', '|---|' + '---:|' * len(ref['records'])]
    for doc, label in zip(docs, labels):
        order = {(r['round'], r['domain']): r[metric] for r in doc['records']}
        detail.append(f'| {label} | ' + ' | '.join(
            f'{order[(r["round"], r["domain"])]:.1f}' for r in ref['records']) + ' |')
    return '\n'.join(lines + detail)
