"""Tables and figures of results documents: one run's table, several runs side by side, and
the metric along the stream."""
from __future__ import annotations

import csv
import json
import math
import os
import os.path as osp
from typing import Sequence

__all__ = ['FIGURE_DPI', 'FIGURE_SIZE', 'check_same_stream', 'compare_csv', 'compare_markdown',
           'compare_rows', 'comparison_entry', 'format_records', 'plot_results', 'run_label',
           'run_labels', 'write_comparison']

def run_label(doc: dict) -> str:
    """``method+regularizer+...``: how a run is named in tables."""
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


def run_labels(docs: Sequence[dict], labels: Sequence[str | None] | None = None) -> list[str]:
    """Row names: method + regularizers, then the user's label in brackets.

    Runs that would share a name and have no label are told apart by their config's name.
    """
    labels = list(labels) if labels else [None] * len(docs)
    if len(labels) != len(docs):
        raise ValueError(f'{len(labels)} labels for {len(docs)} runs')
    names = [run_label(d) for d in docs]
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


def comparison_entry(doc: dict) -> dict:
    """What the comparison tables and figure need of a run's results document (its records, with
    their curves), and what names the run (its config, checkpoint and seed); no environment."""
    keep = ('method', 'regularizers', 'config', 'checkpoint', 'seed', 'metric', 'rounds',
            'domains', 'records', 'mean', 'images_per_s')
    return {k: doc[k] for k in keep if k in doc}


def write_comparison(document: dict, out: str, stem: str = 'comparison',
                     save: bool = False) -> list[str]:
    """``<stem>.{md,csv,png}`` of several runs side by side (:func:`compare_markdown`,
    :func:`compare_csv`, :func:`plot_results`), from a document ``dict(runs=[...],
    labels=[...])`` whose runs are :func:`comparison_entry`'s; with ``save`` also the document
    itself, ``<stem>.json``, from which the three are made again."""
    runs, labels = document['runs'], document.get('labels')
    os.makedirs(out, exist_ok=True)
    paths = [osp.join(out, f'{stem}{ext}') for ext in ('.md', '.csv', '.png')]
    with open(paths[0], 'w') as f:
        f.write(compare_markdown(runs, labels) + '\n')
    compare_csv(runs, paths[1], labels)
    plot_results(runs, paths[2], labels)
    if save:
        paths.append(osp.join(out, f'{stem}.json'))
        with open(paths[-1], 'w') as f:
            json.dump(dict(labels=labels, runs=runs), f, indent=2)
    return paths
