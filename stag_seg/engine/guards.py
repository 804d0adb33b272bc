"""What keeps a long stream alive: input checks, the bad-input policy and the collapse guard."""
from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any, Callable, Sequence

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..dist import all_ranks
from ..structures import STATS_KEY

__all__ = ['BAD_INPUT_POLICIES', 'BadInputError', 'BadInputPolicy', 'CollapseGuard',
           'CollapseGuardHook',
           'batch_files', 'check_batch', 'prediction_stats']

#: ``test_cfg.on_bad_input``: stop with a clear error (results so far on disk), or skip the
#: item, log it and count it in the results.
BAD_INPUT_POLICIES = ('error', 'skip')


class BadInputError(RuntimeError):
    """An input the stream cannot use; the message names the file, the domain and the step."""


class BadInputPolicy:
    """``test_cfg.on_bad_input``: stop with a clear error, or skip, log and count.

    Args:
        policy (str): ``'error'`` or ``'skip'``.
    """

    def __init__(self, policy: str) -> None:
        if policy not in BAD_INPUT_POLICIES:
            raise ValueError(f'test_cfg.on_bad_input must be one of {BAD_INPUT_POLICIES}, got '
                             f'{policy!r}')
        self.policy = policy

    def apply(self, message: str, skipped: list[dict], write_partial: Callable[[str], Any],
              item: dict) -> None:
        """Handle one bad ``item`` (``step``, ``error``, ``scored``, ``samples``): append it to
        ``skipped``, or write the results gathered so far (``write_partial(message)`` returns
        their path) and raise :class:`BadInputError`.

        ``scored``: the item's prediction was made and scored (a non-finite step), as opposed
        to an item skipped before the model saw it (``samples`` of them), which needs one
        process: the other ranks would run that step's collectives without this one.
        """
        if self.policy == 'skip' and not item['scored'] and get_world_size() > 1:
            message += (' (skipping an item before the model sees it needs one process; '
                        'with several, the run stops)')
        elif self.policy == 'skip':
            print_log(f'skipped: {message}', logger='current', level=logging.WARNING)
            skipped.append(item)
            return
        raise BadInputError(f'{message}\n(results gathered so far: {write_partial(message)}; '
                            "test_cfg.on_bad_input='skip' skips and counts such items)")


def _files(sample: Any) -> str | None:
    meta = getattr(sample, 'metainfo', {}) or {}
    names = [str(meta[k]) for k in ('img_path', 'seg_map_path') if meta.get(k)]
    return ' / '.join(names) if names else None


def batch_files(data_batch: dict) -> str:
    """The files of a batch's samples, for messages; samples read from arrays (no file name) are
    given by their index in their data set (``sample_idx``), or counted."""
    samples = data_batch.get('data_samples', []) or []
    if not samples:
        return '<a batch without data samples>'
    files = [_files(s) for s in samples]
    names = [name for name in files if name]
    unnamed = [s for s, name in zip(samples, files) if not name]
    indices = [(getattr(s, 'metainfo', {}) or {}).get('sample_idx') for s in unnamed]
    if unnamed and all(i is not None for i in indices):
        names.append(f'samples {", ".join(str(i) for i in indices)} of the data set (no file '
                     'names)')
    elif unnamed:
        names.append(f'{len(unnamed)} samples without file names')
    return ', '.join(names)


def check_batch(data_batch: dict, num_classes: int | None, ignore_index: int = 255) -> None:
    """Raise ``ValueError`` naming the file when a sample's labels cannot be scored.

    Checked before the model sees the batch (so a skipped item never adapts the model):
    a segmentation label map must have the image's original size and only ids in
    ``[0, num_classes)`` or ``ignore_index``; a classification label must lie in
    ``[0, num_classes)``.
    """
    for sample in data_batch.get('data_samples', []) or []:
        if 'gt_sem_seg' in sample:
            label = sample.gt_sem_seg.data
            shape = tuple(sample.metainfo.get('ori_shape', label.shape[-2:]))
            if tuple(label.shape[-2:]) != shape[:2]:
                raise ValueError(f'{_files(sample)}: label map of size {tuple(label.shape[-2:])}'
                                 f' for an image of size {shape[:2]}')
            if num_classes is not None:
                ids = label[label != ignore_index]
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
                    bad = sorted({int(v) for v in ids.unique()
                                  if v < 0 or v >= num_classes})[:10]
                    raise ValueError(f'{_files(sample)}: label ids {bad} outside the '
                                     f'{num_classes} classes (ignore index {ignore_index})')
        elif 'gt_label' in sample and num_classes is not None:
            label = sample.gt_label
            if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes):
                raise ValueError(f'{_files(sample)}: label {label.tolist()} outside the '
                                 f'{num_classes} classes')


def prediction_stats(outputs: Sequence[Any]) -> tuple[float, torch.Tensor] | None:
    """Mean entropy of the predicted distributions and the predicted labels of a batch.

    Reads MMSeg's ``seg_logits`` or mmpretrain's ``pred_score``; None when neither is there.
    """
    entropies, labels = [], []
    for sample in outputs:
        if 'seg_logits' in sample:
            logits = sample.seg_logits.data.float()  # (C, H, W)
            probs = logits.softmax(0)
            entropies.append(float(-(probs * probs.clamp_min(1e-12).log()).sum(0).mean()))
            labels.append(logits.argmax(0).flatten())
        elif 'pred_score' in sample:
            probs = sample.pred_score.float()
            entropies.append(float(-(probs * probs.clamp_min(1e-12).log()).sum()))
            labels.append(probs.argmax().view(1))
        else:
            return None
    if not entropies:
        return None
    return sum(entropies) / len(entropies), torch.cat(labels)


class CollapseGuard:
    """Reset the adapted model to the source when the stream shows a collapse, or every K steps.

    Signals, each optional (all off by default):

    - ``entropy_below``: the moving average (``momentum``) of the batches' mean prediction
      entropy falls below it: the model has become overconfident everywhere;
    - ``min_classes``: over the last ``window`` steps, fewer than ``min_classes`` classes
      each take at least ``min_share`` of the predictions: the histogram has collapsed;
    - ``every``: a periodic reset every ``every`` steps.

    Args:
        entropy_below (float, optional): Threshold on the entropy average (nats).
        momentum (float): Weight of the old value in that average. Defaults to 0.9.
        min_classes (int, optional): Fewest classes the predictions must keep.
        window (int): Steps the class histogram covers. Defaults to 50.
        min_share (float): Share of the predictions that makes a class count. Defaults to 0.01.
        every (int, optional): Reset every this many steps.
        warmup (int): Steps after a reset before the collapse signals may fire again.
            Defaults to 10.
    """

    def __init__(self,
                 entropy_below: float | None = None,
                 momentum: float = 0.9,
                 min_classes: int | None = None,
                 window: int = 50,
                 min_share: float = 0.01,
                 every: int | None = None,
                 warmup: int = 10) -> None:
        if entropy_below is None and min_classes is None and every is None:
            raise ValueError('test_cfg.collapse_guard needs at least one of entropy_below, '
                             'min_classes or every')
        if every is not None and (not isinstance(every, int) or every < 1):
            raise ValueError(f'collapse_guard.every must be an int >= 1, got {every!r}')
        if min_classes is not None and (not isinstance(min_classes, int) or min_classes < 1):
            raise ValueError(f'collapse_guard.min_classes must be an int >= 1, got '
                             f'{min_classes!r}')
        if not 0 <= momentum < 1:
            raise ValueError(f'collapse_guard.momentum must be in [0, 1), got {momentum}')
        self.entropy_below = entropy_below
        self.momentum = momentum
        self.min_classes = min_classes
        self.window = window
        self.min_share = min_share
        self.every = every
        self.warmup = warmup
        self.clear()
        self.steps = 0

    def clear(self) -> None:
        """Forget the signals' history (after a reset)."""
        self.ema: float | None = None
        self.histories: deque = deque(maxlen=self.window)
        self.since_reset = 0

    def state_dict(self) -> dict:
        """The signals' history, for a resumed run."""
        return dict(ema=self.ema, histories=list(self.histories),
                    since_reset=self.since_reset, steps=self.steps)

    def load_state_dict(self, state: dict) -> None:
        self.ema, self.since_reset, self.steps = state['ema'], state['since_reset'], \
            state['steps']
        self.histories = deque(state['histories'], maxlen=self.window)

    def step(self, outputs: Sequence[Any]) -> str | None:
        """Take one batch's predictions; the reason to reset now, or None."""
        self.steps += 1
        self.since_reset += 1
        if self.every is not None and self.steps % self.every == 0:
            return f'periodic reset (every {self.every} steps)'
        stats = prediction_stats(outputs)
        if stats is None:
            return None
        entropy, labels = stats
        if math.isfinite(entropy):
            self.ema = entropy if self.ema is None else \
                self.momentum * self.ema + (1 - self.momentum) * entropy
        self.histories.append(torch.bincount(labels.flatten()).cpu())
        if self.since_reset <= self.warmup:
            return None
        if self.entropy_below is not None and self.ema is not None \
                and self.ema < self.entropy_below:
            return f'entropy average {self.ema:.4f} < {self.entropy_below}'
        if self.min_classes is not None and len(self.histories) == self.window:
            size = max(len(h) for h in self.histories)
            counts = sum(torch.nn.functional.pad(h, (0, size - len(h)))
                         for h in self.histories)
            kept = int((counts.float() / counts.sum() >= self.min_share).sum())
            if kept < self.min_classes:
                return (f'{kept} classes hold >= {self.min_share:.0%} of the last '
                        f'{self.window} steps\' predictions (< {self.min_classes})')
        return None


@HOOKS.register_module()
class CollapseGuardHook(Hook):
    """Run a :class:`CollapseGuard` on each batch's outputs and reset the adapted model to the
    source when it fires.

    ``test_cfg.collapse_guard=dict(...)`` of ``ContinualTestLoop`` registers one; it also works
    under any other test loop from ``custom_hooks``. A reset is marked in the step's statistics
    (``guard_reset``), so it is counted in the record of its (round, domain). Every rank resets
    together, or none: the replicas must stay identical.

    Args:
        **kwargs: :class:`CollapseGuard`'s arguments (``entropy_below``, ``min_classes``,
            ``every``, ...).
    """

    # after the adaptation (TTAHook, VERY_HIGH), before the statistics are taken (NORMAL)
    priority = 'ABOVE_NORMAL'

    def __init__(self, **kwargs) -> None:
        self.guard = CollapseGuard(**kwargs)

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict | None = None,
                        outputs: Sequence | None = None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        method = getattr(model, 'tta_method', None)
        if method is None or not outputs:
            return
        reason = self.guard.step(outputs)
        if all_ranks(not reason):
            return
        reason = reason or 'the collapse guard fired on another rank'
        method.reset()
        self.guard.clear()
        outputs[0].metainfo.get(STATS_KEY, {})['guard_reset'] = 1.0
        loop = runner.test_loop
        where = (f'round {loop.round_idx} {loop.domain} ' if hasattr(loop, 'round_idx')
                 else '')
        print_log(f'collapse guard: {where}step {batch_idx}: {reason}; the model is reset to '
                  'the source', logger='current', level=logging.WARNING)
