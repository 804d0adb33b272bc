"""The data structures every layer shares: what a tap records, what a method returns, what a
step may use, and how the step's statistics travel with its outputs.

This module sits low on purpose (it imports only torch): the methods, the model wrappers and
the engine all speak in these types, and none of them has to import another to do so.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['MethodLoss', 'NotAdaptableError', 'STATS_KEY', 'NONFINITE_KEY', 'StepContext', 'Tap',
           'TapOutput',
           'attach_stats', 'step_nonfinite', 'step_stats']

#: Where an adapted ``test_step`` leaves the statistics of its step (floats by name): in the
#: metainfo of every data sample it returns, so that they reach whatever receives the outputs
#: (the loop, hooks' ``after_test_iter``, the visualizer) through MMEngine's own channel.
STATS_KEY = 'adapt_stats'
#: Beside it, for a step that was dropped: what was not finite (logits, loss or gradient).
NONFINITE_KEY = 'adapt_nonfinite'


class NotAdaptableError(NotImplementedError):
    """The toolkit refuses a model: it has no final linear classifier it can tap.

    The message names the model, the part that lacks the classifier, and what adapting it would
    need: adaptation of this kind of model is not implemented. (Not a ``TypeError``: MMEngine
    rewraps those raised in hooks as plain ``TypeError`` and the refusal would lose its type.)
    """


@dataclass
class TapOutput:
    """One forward's view of the classifier, the structure every method receives.

    Attributes:
        logits (Tensor): (N, C, *) logits at the classifier's resolution, in the graph.
        weight (Tensor): (C, D) classifier weight ``W``.
        bias (Tensor | None): (C,) classifier bias ``b``.
        features (Tensor): (N, D, *) classifier inputs ``z``, in the graph.
        valid (Tensor | None): (N, *) bool, positions that hold real image content (not
            padding); None when every position does.
    """
    logits: Tensor
    weight: Tensor
    bias: Tensor | None
    features: Tensor
    valid: Tensor | None = None

    @property
    def num_classes(self) -> int:
        return self.logits.size(1)


class Tap(Protocol):
    """What the step needs of a classifier tap (:class:`stag_seg.models.ClassifierTap`)."""

    def capture(self) -> AbstractContextManager: ...

    def output(self) -> TapOutput: ...

    def clear(self) -> None: ...


@dataclass
class MethodLoss:
    """What a method's ``loss`` returns.

    Attributes:
        loss (Tensor): Scalar base loss ``L_base``.
        mask (Tensor | None): (N, *) bool positions (or (N,) samples) the loss uses.
        weights (Tensor | None): (N, *) or (N,) weights the loss applies to them.
        stats (dict): Scalars to log (floats).
        skip (bool): Take no optimizer step this time (nothing was selected), as the reference
            implementations of EATA and DeYO do.
        reweight (Callable, optional): ``reweight(m)`` is the loss again with each position's
            term multiplied by ``m``, a detached (N, *) multiplier at the tapped logits'
            positions: how a regularizer's weighting reading (STAG's ``mode='reweight'``)
            changes the method's own loss. None where the loss has no such terms.
        out (TapOutput | None): The tapped forward the loss was taken on, when it is not the
            step's main forward (RoTTA trains on its memory bank's augmented samples); the
            regularizers then take their logits from it, with ``mask`` and ``weights``.
    """
    loss: Tensor
    mask: Tensor | None = None
    weights: Tensor | None = None
    stats: dict = field(default_factory=dict)
    skip: bool = False
    reweight: Callable[[Tensor], Tensor] | None = None
    out: TapOutput | None = None


@dataclass
class StepContext:
    """What a method may use besides the tapped output of the main forward.

    Attributes:
        inputs (Tensor): The preprocessed batch, (N, 3, H, W).
        model (nn.Module): The model being adapted.
        logits_fn (Callable): ``logits_fn(model, inputs)`` runs any model of this family to its
            classifier's logits: (N, C, h, w) at the decode head's resolution for segmentors,
            (N, C) for classifiers.
        tap (Tap | None): The tap on ``model``'s classifier.
        valid (Callable | None): Maps logits of ``inputs`` to their padding mask.
        metas (list[dict] | None): Segmentors: each image's meta information (``ori_shape``,
            ``img_shape``, padding), copies the method may read.
        model_inputs (Tensor | None): What the adapted model's main forward ran on when the
            method's ``prepare`` changed the batch (SVDP's prompted image); None: ``inputs``.
        output (Any): What the main forward returned, set before the method's loss:
            segmentors' (N, C, H, W) logits at the input size (the prediction that is scored,
            before it is resized), classifiers' data samples.
        state (dict): Scratch space for one step (e.g. CoTTA's pseudo-labels).
        stats (dict): The step's statistics (floats by name), filled by the step and, in
            ``after_step``, by the method (SAR's moving average and resets).
    """
    inputs: Tensor
    model: nn.Module
    logits_fn: Callable[[nn.Module, Tensor], Tensor]
    tap: Tap | None = None
    valid: Callable[[Tensor], Tensor | None] | None = None
    metas: list[dict] | None = None
    model_inputs: Tensor | None = None
    output: Any = None
    state: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def original_size(self) -> tuple[int, int]:
        """The size the predictions are scored at: the batch's one ``ori_shape``.

        Raises:
            ValueError: no metas, images of different original sizes, or padded images
                (their content would have to be cropped first).
        """
        if not self.metas:
            raise ValueError('the loss at the original resolution needs the images\' meta '
                             'information (ori_shape); this model family has none')
        sizes = {tuple(m['ori_shape'][:2]) for m in self.metas}
        padded = [m for m in self.metas
                  if any(m.get('img_padding_size', m.get('padding_size', [0, 0, 0, 0])))]
        if len(sizes) != 1 or padded:
            raise ValueError('the loss at the original resolution needs one original size per '
                             f'batch and no padding, got sizes {sorted(sizes)} and '
                             f'{len(padded)} padded images; use batch size 1 (the reference '
                             "protocol) or resolution='decoder'")
        return sizes.pop()

    def at_original_size(self, logits: Tensor) -> Tensor:
        """(N, C, h, w) logits of ``inputs`` (any resolution) at :meth:`original_size`:
        bilinear, in one resize, as the CoTTA segmentation code resizes its decoder logits to
        the label size."""
        size = self.original_size()
        if tuple(logits.shape[2:]) == size:
            return logits
        align = bool(getattr(self.model, 'align_corners', False))
        return F.interpolate(logits, size=size, mode='bilinear', align_corners=align)

    def forward(self, inputs: Tensor | None = None) -> TapOutput:
        """Run the adapted model on ``inputs`` (default: what its main forward ran on) and return
        the tapped output, in the graph when gradients are enabled."""
        if inputs is None:
            x = self.inputs if self.model_inputs is None else self.model_inputs
        else:
            x = inputs
        with self.tap.capture():
            self.logits_fn(self.model, x)
        out = self.tap.output()
        if inputs is None and self.valid is not None:
            out.valid = self.valid(out.logits)
        return out


def attach_stats(outputs: Sequence[Any], stats: dict[str, float],
                 nonfinite: str | None = None) -> None:
    """Leave a step's ``stats`` (and what was not finite, for a dropped step) in the metainfo of
    each of its output data samples."""
    meta = {STATS_KEY: stats} if nonfinite is None else {STATS_KEY: stats,
                                                         NONFINITE_KEY: nonfinite}
    for sample in outputs:
        sample.set_metainfo(meta)


def step_stats(outputs: Sequence[Any] | None) -> dict[str, float]:
    """The statistics :func:`attach_stats` left on a batch's outputs; ``{}`` when none (a model
    that does not adapt, or an empty batch)."""
    if not outputs:
        return {}
    return dict(getattr(outputs[0], 'metainfo', {}).get(STATS_KEY, {}))


def step_nonfinite(outputs: Sequence[Any] | None) -> str | None:
    """What was not finite in the step of these outputs (``'logits'``, ``'loss'``,
    ``'gradient'``), or None when the step was applied."""
    if not outputs:
        return None
    return getattr(outputs[0], 'metainfo', {}).get(NONFINITE_KEY)
