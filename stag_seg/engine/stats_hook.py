"""``TTAStatsHook``: each step's adaptation statistics and the running metric, to the
visualizer, from the outputs of any test loop."""
from __future__ import annotations

from typing import Sequence

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..evaluation import DomainProgress, RunningMetric
from ..structures import step_nonfinite, step_stats

__all__ = ['TTAStatsHook']


@HOOKS.register_module()
class TTAStatsHook(Hook):
    """Write the statistics an adapted ``test_step`` leaves on its outputs (loss, STAG loss and
    cosine, fraction selected, ...) and the running metric to the runner's visualizer.

    Every ``ceil(steps / curve_points)`` steps of a (round, domain) it writes the means since
    the last write as ``adapt/<name>`` and the metric so far as ``running/<metric>``, at the
    step's index in the stream, so ``vis_backends`` chooses where they go (``LocalVisBackend``'s
    ``scalars.json``, TensorBoard, W&B). ``ContinualTestLoop`` registers one (unless the config
    has one) and starts a new :class:`~stag_seg.evaluation.DomainProgress` for every
    (round, domain); under any other test loop the whole test set is one domain.

    Args:
        curve_points (int): Writes per (round, domain). Defaults to 20.
        metric (str, optional): The running metric's name; by default ``'mIoU'`` for MMSeg's
            ``IoUMetric`` and ``'accuracy'`` for mmpretrain's ``Accuracy``.
    """

    priority = 'NORMAL'

    def __init__(self, curve_points: int = 20, metric: str | None = None) -> None:
        if not isinstance(curve_points, int) or curve_points < 1:
            raise ValueError(f'TTAStatsHook.curve_points must be an int >= 1, got '
                             f'{curve_points!r}')
        self.curve_points = curve_points
        self.metric = metric
        self.progress: DomainProgress | None = None
        self.running = RunningMetric()
        self.step = 0

    def before_test_epoch(self, runner) -> None:
        self.step = 0
        loader = runner.test_loop.dataloader
        self.begin(DomainProgress(len(loader), self.curve_points,
                                  self.metric or _metric_name(runner.test_loop.evaluator)))

    def begin(self, progress: DomainProgress) -> None:
        """Account the next steps to ``progress`` (a new (round, domain))."""
        self.progress = progress
        self.running.reset()

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict | None = None,
                        outputs: Sequence | None = None) -> None:
        self.step += 1
        value = self.running.update(runner.test_loop.evaluator)
        scalars = self.progress.add(batch_idx, step_stats(outputs), len(outputs or ()), value,
                                    step_nonfinite(outputs))
        if scalars:
            runner.visualizer.add_scalars(scalars, step=self.step)


def _metric_name(evaluator) -> str:
    metrics = getattr(evaluator, 'metrics', None) or [None]
    return {'IoUMetric': 'mIoU', 'Accuracy': 'accuracy'}.get(type(metrics[0]).__name__, 'metric')
