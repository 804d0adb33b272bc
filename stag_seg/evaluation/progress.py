"""What one (round, domain) of a stream accumulates step by step, between its records."""
from __future__ import annotations

import math

__all__ = ['COUNTED_STATS', 'DomainProgress']

#: Step statistics that are events to count in the record rather than values to average:
#: ``{stat: record key}``.
COUNTED_STATS = {'nonfinite': 'nonfinite_steps', 'guard_reset': 'guard_resets'}


class DomainProgress:
    """The bookkeeping of one (round, domain): the adaptation statistics (means over the
    domain and over the window since the last scalar write), the running-metric curve, the
    images seen, the skipped items and the counted events.

    Args:
        num_steps (int): Batches in the domain.
        curve_points (int): At most this many points of the running metric (and writes of
            the windowed statistics) per domain. Defaults to 20.
        metric (str): Name of the running metric in the scalars (``'mIoU'``,
            ``'accuracy'``). Defaults to ``'mIoU'``.
    """

    def __init__(self, num_steps: int, curve_points: int = 20, metric: str = 'mIoU') -> None:
        self.num_steps = num_steps
        self.interval = -(-num_steps // curve_points)  # at most curve_points points
        self.metric = metric
        self.stat_sums: dict[str, list] = {}  # whole domain: the record's adapt/* means
        self.window: dict[str, list] = {}  # since the last scalar write
        self.curve: list[list] = []
        self.skipped: list[dict] = []
        self.counts = {key: 0 for key in COUNTED_STATS.values()}
        self.num = 0
        self.elapsed = 0.0
        self.next_step = 0
        self.value: float | None = None  # the running metric after the last step
        self.nonfinite: str | None = None  # what was not finite in the last step, if any

    def add(self, step: int, stats: dict[str, float], num_images: int, value: float | None,
            nonfinite: str | None = None) -> dict[str, float]:
        """Take step ``step``'s statistics (and, for a dropped step, what was not finite);
        return the scalars to write now (``{}`` between writes): the running metric and the
        statistics' means since the last write."""
        self.nonfinite = nonfinite
        for key, value_ in stats.items():
            if key in COUNTED_STATS:
                self.counts[COUNTED_STATS[key]] += int(bool(value_))
                if key != 'nonfinite':  # the loss statistics keep their nonfinite mean
                    continue
            if math.isfinite(value_):  # e.g. no STAG cosine on a step without valid pixels
                for sums in (self.stat_sums.setdefault(key, [0.0, 0]),
                             self.window.setdefault(key, [0.0, 0])):
                    sums[0] += float(value_)
                    sums[1] += 1
        self.num += num_images
        self.value = value
        if (step + 1) % self.interval and step + 1 != self.num_steps:
            return {}
        if value is not None:
            self.curve.append([step + 1, round(value, 4)])
        scalars = {f'adapt/{k}': total / count for k, (total, count) in self.window.items()}
        if value is not None:
            scalars[f'running/{self.metric}'] = value
        self.window.clear()
        return scalars

    def means(self) -> dict[str, float]:
        """The statistics' means per step over the domain, as ``adapt/<name>``."""
        return {f'adapt/{k}': total / count for k, (total, count) in self.stat_sums.items()}

    def record_fields(self) -> dict:
        """What the record of the domain takes from its progress."""
        return dict(steps=self.num_steps, curve=self.curve,
                    bad_inputs=sum(1 for item in self.skipped if not item['scored']),
                    skipped_items=self.skipped, **self.counts)

    def state_dict(self) -> dict:
        """Plain values, for a resumed run."""
        return {k: v for k, v in vars(self).items()}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)
