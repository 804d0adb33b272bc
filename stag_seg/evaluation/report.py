"""Write and compare results: ``tta_results.{json,csv,md,png}`` and side-by-side tables."""
from __future__ import annotations

import csv
import json
import math
import os
import os.path as osp
from typing import Sequence

from .records import validate_results

__all__ = ['check_same_stream', 'compare_csv', 'compare_markdown', 'compare_rows',
           'format_records', 'load_results', 'plot_results', 'run_labels', 'write_results']


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
        error = metric == 'accuracy'
        writer.writerow(['round', 'domain', 'num_samples', metric] + ['error'] * error
                        + ['seconds'])
        for rec in doc['records']:
            writer.writerow([rec['round'], rec['domain'], rec['num_samples'],
                             f'{rec[metric]:.4f}'] + [f'{100.0 - rec[metric]:.4f}'] * error
                            + [f'{rec.get("seconds", 0.0):.3f}'])
    with open(base + '.md', 'w') as f:
        f.write(f'# {_run_name(doc)}: {metric} along the stream\n\n')
        f.write(f'config: `{doc["config"]}`, checkpoint: `{doc["checkpoint"]}`, seed: '
                f'{doc["seed"]}\n\n')
        f.write(format_records(doc['records'], metric) + '\n\n')
        error = f' (error {100.0 - doc["mean"]:.2f})' if metric == 'accuracy' else ''
        f.write(f'mean {metric}: {doc["mean"]:.2f}{error}; {doc["images_per_s"]:.2f} '
                'images/s\n')
    plot_results([doc], base + '.png')
    return [base + ext for ext in ('.json', '.csv', '.md', '.png')]


#: Size of every stream figure, in inches at FIGURE_DPI (1000 x 420 pixels).
FIGURE_SIZE = (10.0, 4.2)
FIGURE_DPI = 100


def _spans(doc: dict) -> list[tuple[int, int, dict]]:
    """``(first image, last image, record)`` of each (round, domain), in stream order.

    Positions count images (samples), so that runs of other batch sizes or process counts
    line up on one axis.
    """
    out, offset = [], 0
    for rec in doc['records']:
        out.append((offset, offset + rec['num_samples'], rec))
        offset += rec['num_samples']
    return out


def _curve(first: int, last: int, rec: dict, metric: str) -> tuple[list[float], list[float]]:
    """The running metric of one (round, domain) at image positions (flat without a curve)."""
    if not rec.get('curve'):
        return [first, last], [rec[metric], rec[metric]]
    per_step = (last - first) / (rec.get('steps') or (last - first))
    return ([first + step * per_step for step, _ in rec['curve']],
            [value for _, value in rec['curve']])


def plot_results(docs: Sequence[dict], path: str, labels: Sequence[str] | None = None) -> str:
    """One line per run: the metric along the stream, x being the adaptation step.

    A record with a ``curve`` (the running metric inside its (round, domain)) is drawn as that
    curve; one without as a flat line at its value. Domain boundaries are marked (rounds with a
    darker line) and each span is labelled with its domain at the top.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = run_labels(docs, labels)
    metric = docs[0]['metric']
    fig, ax = plt.subplots(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    for doc, name in zip(docs, names):
        xs: list[float] = []
        ys: list[float] = []
        for first, last, rec in _spans(doc):
            curve_x, curve_y = _curve(first, last, rec, metric)
            xs.extend(curve_x)
            ys.extend(curve_y)
            xs.append(float('nan'))  # a break between domains: the metric restarts
            ys.append(float('nan'))
        ax.plot(xs, ys, lw=1.2, label=f'{name} (mean {doc["mean"]:.2f})')
    spans = _spans(docs[0])
    for first, _, rec in spans[1:]:
        new_round = rec['domain'] == docs[0]['domains'][0]
        ax.axvline(first, color='0.35' if new_round else '0.75', lw=1.0 if new_round else 0.6,
                   ls='-' if new_round else '--')
    top = ax.secondary_xaxis('top')
    top.set_xticks([(first + last) / 2 for first, last, _ in spans])
    many = len(spans) > 16
    top.set_xticklabels([f'{rec["domain"]}' if many else f'r{rec["round"]} {rec["domain"]}'
                         for _, _, rec in spans], fontsize=6 if many else 7,
                        rotation=90 if many else 0)
    top.tick_params(length=0)
    ax.set_xlim(0, spans[-1][1])
    ax.set_xlabel('images seen in the stream (rounds separated by dark lines)')
    ax.set_ylabel(f'{metric} (running, per domain)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower left')
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
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


def run_labels(docs: Sequence[dict], labels: Sequence[str | None] | None = None) -> list[str]:
    """Row names: method + regularizers, then the user's label in brackets.

    Runs that would share a name and have no label are told apart by their config's name.
    """
    labels = list(labels) if labels else [None] * len(docs)
    if len(labels) != len(docs):
        raise ValueError(f'{len(labels)} labels for {len(docs)} runs')
    names = [_run_name(d) for d in docs]
    out = []
    for doc, name, label in zip(docs, names, labels):
        if not label and names.count(name) > 1 and doc.get('config'):
            label = osp.splitext(osp.basename(doc['config']))[0]
        out.append(f'{name} ({label})' if label else name)
    return out


def check_same_stream(docs: Sequence[dict]) -> None:
    """Raise ``ValueError`` unless every run was made on the first run's stream."""
    if not docs:
        raise ValueError('nothing to compare')
    ref = docs[0]
    for i, doc in enumerate(docs[1:], 1):
        for key in ('metric', 'rounds', 'domains'):
            if doc[key] != ref[key]:
                raise ValueError(f'cannot compare results of different streams: run {i + 1} has '
                                 f'{key} {doc[key]!r}, run 1 has {ref[key]!r}')
        sizes = {(r['round'], r['domain']): r['num_samples'] for r in ref['records']}
        for rec in doc['records']:
            if rec['num_samples'] != sizes[(rec['round'], rec['domain'])]:
                raise ValueError(
                    f'cannot compare results of different streams: run {i + 1} scored '
                    f'{rec["num_samples"]} samples in round {rec["round"]} {rec["domain"]}, '
                    f'run 1 scored {sizes[(rec["round"], rec["domain"])]}')


def compare_rows(docs: Sequence[dict], labels: Sequence[str | None] | None = None
                 ) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """The comparison as numbers: the column names and one ``(run, values)`` row per run.

    Columns follow the published continual tables: every domain of every round in stream
    order (``r1 fog``, ...), then the mean and images/s.
    """
    check_same_stream(docs)
    ref = docs[0]
    metric = ref['metric']
    keys = [(r, d) for r in range(1, ref['rounds'] + 1) for d in ref['domains']]
    columns = [f'r{r} {d}' for r, d in keys] + [f'mean {metric}', 'images/s']
    rows = []
    for doc, name in zip(docs, run_labels(docs, labels)):
        value = {(r['round'], r['domain']): r[metric] for r in doc['records']}
        rows.append((name, [value[k] for k in keys] + [doc['mean'], doc['images_per_s']]))
    return columns, rows


def compare_markdown(docs: Sequence[dict], labels: Sequence[str | None] | None = None) -> str:
    """Runs side by side, best value of each column in bold (higher is better for all).

    Raises:
        ValueError: the runs were made on different streams (domains, rounds, metric or the
            number of samples of a domain).
    """
    columns, rows = compare_rows(docs, labels)
    shown = [[f'{v:.2f}' if i >= len(columns) - 2 else f'{v:.1f}' for i, v in enumerate(vals)]
             for _, vals in rows]
    best = [max((float(cells[i]) for cells in shown if not math.isnan(float(cells[i]))),
                default=math.nan) for i in range(len(columns))]
    lines = ['| run | ' + ' | '.join(columns) + ' |', '|---|' + '---:|' * len(columns)]
    for (name, _), cells in zip(rows, shown):
        cells = [f'**{c}**' if float(c) == best[i] and len(rows) > 1 else c
                 for i, c in enumerate(cells)]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def compare_csv(docs: Sequence[dict], path: str,
                labels: Sequence[str | None] | None = None) -> str:
    """The comparison table as CSV (full precision)."""
    columns, rows = compare_rows(docs, labels)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['run'] + columns)
        for name, values in rows:
            writer.writerow([name] + [f'{v:.4f}' for v in values])
    return path
