"""The classifier tap: what methods and regularizers see of a model's final linear classifier.

A forward hook on the classifier layer (``decode_head.conv_seg`` in MMSeg, a 1x1 conv; the
head's last ``nn.Linear`` in mmpretrain) records its input features and output logits while a
capture is open. Nothing is recorded, and no hook stays registered, outside a capture.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from ..structures import TapOutput

__all__ = ['ClassifierTap', 'TapOutput', 'tap_cls_head', 'tap_decode_head']


class ClassifierTap:
    """Records the input and output of a final linear classifier during a forward pass.

    Args:
        layer (nn.Module): A ``nn.Linear`` or a 1x1, ungrouped ``nn.Conv2d``.
        name (str): How to call the layer in messages. Defaults to ``'classifier'``.
    """

    def __init__(self, layer: nn.Module, name: str = 'classifier') -> None:
        if isinstance(layer, nn.Conv2d):
            if layer.kernel_size != (1, 1) or layer.groups != 1:
                raise TypeError(f'{name} must be a 1x1 ungrouped Conv2d to be tapped as a linear '
                                f'classifier, got kernel_size={layer.kernel_size}, '
                                f'groups={layer.groups}')
        elif not isinstance(layer, nn.Linear):
            raise TypeError(f'{name} must be nn.Linear or a 1x1 nn.Conv2d, got '
                            f'{type(layer).__name__}')
        self.layer = layer
        self.name = name
        #: Set once a step verified that the predictions come from this layer's output.
        self.checked = False
        self._records: list[tuple[Tensor, Tensor]] = []

    @property
    def weight(self) -> Tensor:
        """(C, D) view of the layer's weight (shares storage and autograd history)."""
        w = self.layer.weight
        return w.view(w.size(0), w.size(1))

    @property
    def bias(self) -> Tensor | None:
        return self.layer.bias

    @contextmanager
    def capture(self) -> Iterator['ClassifierTap']:
        """Record every call of the layer inside the ``with`` block (records are cleared first)."""
        self._records = []

        def record(module: nn.Module, args: tuple, output: Tensor) -> None:
            self._records.append((args[0], output))

        handle = self.layer.register_forward_hook(record)
        try:
            yield self
        finally:
            handle.remove()

    def clear(self) -> None:
        """Drop the recorded tensors (and with them the graph they keep alive)."""
        self._records = []

    def output(self) -> TapOutput:
        """The recorded forward as a :class:`TapOutput`.

        Several calls (slide inference runs the classifier once per crop, each on the whole
        batch) are joined per image: (N, C, h_i, w_i) maps become (N, C, sum_i h_i * w_i).

        Raises:
            RuntimeError: the layer did not run inside the capture.
        """
        if not self._records:
            raise RuntimeError(f'the {self.name} did not run during the forward pass: the model '
                               'does not reach the tapped layer, so it cannot be adapted')
        feats, logits = zip(*self._records)
        if len(logits) == 1:
            return TapOutput(logits[0], self.weight, self.bias, feats[0])
        return TapOutput(torch.cat([x.flatten(2) for x in logits], dim=2), self.weight,
                         self.bias, torch.cat([x.flatten(2) for x in feats], dim=2))


def tap_decode_head(segmentor: nn.Module) -> ClassifierTap:
    """Tap ``decode_head.conv_seg`` of an MMSeg segmentor, with a clear error when it has none."""
    head = getattr(segmentor, 'decode_head', None)
    if head is None or isinstance(head, nn.ModuleList):
        raise TypeError(f'{type(segmentor).__name__} has no single decode_head to tap; STAG and '
                        'the adaptation methods need one decode head ending in conv_seg')
    layer = getattr(head, 'conv_seg', None)
    if not isinstance(layer, nn.Module):
        raise TypeError(f'decode head {type(head).__name__} has no conv_seg layer; the toolkit '
                        'taps the final 1x1 classifier conv_seg of MMSeg decode heads')
    return ClassifierTap(layer, name=f'{type(head).__name__}.conv_seg')


def tap_cls_head(classifier: nn.Module) -> ClassifierTap:
    """Tap the last ``nn.Linear`` of an mmpretrain classifier's head (``LinearClsHead.fc``,
    ``VisionTransformerClsHead.layers.head``, ...).

    Whether that layer really produces the head's scores is checked on the first step.
    """
    head = getattr(classifier, 'head', None)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if head is not None else []
    if not linears:
        raise TypeError(f'the head {type(head).__name__} of {type(classifier).__name__} has no '
                        'nn.Linear layer; the toolkit taps the final linear classifier')
    return ClassifierTap(linears[-1], name=f'{type(head).__name__} final Linear')
