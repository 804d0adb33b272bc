"""The records of a run along its stream, one per (round, domain), and the schema of the
document they become (``tta_results.json``).

:class:`StreamResults` gathers the records while the loop runs and turns them into the document
(:meth:`StreamResults.to_dict`); :func:`validate_results` checks a document against the schema;
:class:`RunningMetric` follows the metric inside the current (round, domain). Writing the
document is :mod:`~stag_seg.evaluation.results_files`'s job, its tables and figures
:mod:`~stag_seg.evaluation.tables`'.
"""
from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ['RESULTS_KEYS', 'RunningMetric', 'StreamResults', 'validate_results', 'versions']

#: Top-level keys of ``tta_results.json`` (the README documents each).
RESULTS_KEYS = ('method', 'regularizers', 'config', 'checkpoint', 'metric', 'rounds', 'domains',
                'records', 'mean', 'images_per_s', 'seed', 'versions')


def versions() -> dict[str, str]:
    """Versions of the software a result depends on."""
    import mmengine
    out = {'python': platform.python_version(), 'torch': torch.__version__,
           'mmengine': mmengine.__version__}
    for name, module in (('mmcv', 'mmcv'), ('mmseg', 'mmseg'), ('mmpretrain', 'mmpretrain')):
        try:
            out[name] = __import__(module).__version__
        except ImportError:
            pass
    from ..version import __version__
    out['stag_seg'] = __version__
    return out


@dataclass
class StreamResults:
    """The records of one run along its stream.

    Args:
        metric (str): Name of the headline metric in the records (``'mIoU'`` or
            ``'accuracy'``).
        rounds (int): Rounds of the stream. domains (list[str]): Domain order of one round.
        metric_key (str, optional): The evaluator's key for it (``'accuracy/top1'``); defaults
            to ``metric``.
    """
    metric: str
    rounds: int
    domains: list[str]
    metric_key: str | None = None
    records: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, round_idx: int, domain: str, num_samples: int, metrics: dict[str, float],
            seconds: float) -> dict:
        """Record the metrics of one (round, domain); ``metrics`` must hold the metric key."""
        key = self.metric_key or self.metric
        if key not in metrics:
            raise KeyError(f'the evaluator returned {sorted(metrics)}, without the metric '
                           f'{key!r} the loop was told to report (test_cfg.metric_key)')
        record = dict(round=round_idx, domain=domain, num_samples=num_samples,
                      **{self.metric: float(metrics[key])})
        record.update({k: _jsonable(v) for k, v in metrics.items() if k != key})
        if self.metric == 'accuracy':  # the corruption benchmarks report the error
            record['error'] = 100.0 - record['accuracy']
        record['seconds'] = seconds
        self.records.append(record)
        self.seconds += seconds
        return record

    @property
    def mean(self) -> float:
        values = [r[self.metric] for r in self.records]
        return sum(values) / len(values) if values else float('nan')

    @property
    def num_samples(self) -> int:
        return sum(r['num_samples'] for r in self.records)

    def to_dict(self, **meta: Any) -> dict:
        """The ``tta_results.json`` document; ``meta`` fills method, config, seed, ..."""
        doc = dict(meta)
        doc.update(metric=self.metric, rounds=self.rounds, domains=list(self.domains),
                   records=self.records, mean=self.mean,
                   **({'mean_error': 100.0 - self.mean} if self.metric == 'accuracy' else {}),
                   images_per_s=self.num_samples / self.seconds if self.seconds else 0.0)
        doc.setdefault('versions', versions())
        return {k: doc[k] for k in RESULTS_KEYS if k in doc} | {
            k: v for k, v in doc.items() if k not in RESULTS_KEYS}

    def summary_metrics(self) -> dict[str, float]:
        """Flat ``{'r1/fog/mIoU': ..., 'mean/mIoU': ...}`` for the runner's hooks."""
        out = {f'r{r["round"]}/{r["domain"]}/{self.metric}': r[self.metric]
               for r in self.records}
        out[f'mean/{self.metric}'] = self.mean
        if self.metric == 'accuracy':
            out['mean/error'] = 100.0 - self.mean
        return out


def validate_results(doc: dict) -> None:
    """Raise ``ValueError`` naming the first way ``doc`` breaks the ``tta_results.json`` schema."""
    missing = [k for k in RESULTS_KEYS if k not in doc]
    if missing:
        raise ValueError(f'results are missing the keys {missing}')
    metric = doc['metric']
    if metric not in ('mIoU', 'accuracy'):
        raise ValueError(f"results' metric must be 'mIoU' or 'accuracy', got {metric!r}")
    expected = [(r, d) for r in range(1, doc['rounds'] + 1) for d in doc['domains']]
    got = [(rec.get('round'), rec.get('domain')) for rec in doc['records']]
    if sorted(got, key=str) != sorted(expected, key=str) or len(got) != len(set(got)):
        raise ValueError(f'results must hold exactly one record per (round, domain) of '
                         f'{doc["rounds"]} rounds x {doc["domains"]}, got {got}')
    for rec in doc['records']:
        if not isinstance(rec.get('num_samples'), int) or not isinstance(rec.get(metric), float):
            raise ValueError(f'record {rec} needs an int num_samples and a float {metric}')
    mean = sum(r[metric] for r in doc['records']) / len(doc['records'])
    both_nan = math.isnan(mean) and math.isnan(doc['mean'])  # a record without a value
    if not both_nan and not math.isclose(doc['mean'], mean, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(f"results' mean {doc['mean']} is not the mean of the records ({mean})")


class RunningMetric:
    """The metric so far in the current (round, domain), for the progress bar and the curves.

    Reads, incrementally, the per-sample results the evaluator has accumulated: an
    ``IoUMetric``'s per-class areas (mIoU) or an mmpretrain ``Accuracy``'s labels and scores
    (top-1 accuracy). Other metrics give None.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._seen = 0
        self._inter = self._union = None
        self._correct = self._total = 0

    def update(self, evaluator: Any) -> float | None:
        metrics = getattr(evaluator, 'metrics', [])
        if not metrics:
            return None
        kind = type(metrics[0]).__name__
        if kind == 'IoUMetric':
            return self._update_iou(metrics[0].results)
        if kind == 'Accuracy':
            return self._update_accuracy(metrics[0].results)
        return None

    def _update_iou(self, results: list) -> float | None:
        for res in results[self._seen:]:
            inter, union = res[0].double(), res[1].double()
            self._inter = inter if self._inter is None else self._inter + inter
            self._union = union if self._union is None else self._union + union
        self._seen = len(results)
        if self._inter is None:
            return None
        iou = self._inter / self._union
        return float(iou[self._union > 0].mean() * 100)

    def _update_accuracy(self, results: list) -> float | None:
        for res in results[self._seen:]:
            pred = res['pred_score'].argmax(-1) if 'pred_score' in res else res['pred_label']
            self._correct += int((pred.view(-1)[:1] == res['gt_label'].view(-1)[:1]).sum())
            self._total += 1
        self._seen = len(results)
        return 100.0 * self._correct / self._total if self._total else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value
