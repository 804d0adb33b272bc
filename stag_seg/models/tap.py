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

from ..structures import NotAdaptableError, TapOutput

__all__ = ['ClassifierTap', 'NOT_PER_PIXEL_LINEAR', 'TapOutput', 'refusal_reason', 'tap_cls_head',
           'tap_decode_head']


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
            NotAdaptableError: the layer did not run inside the capture.
        """
        if not self._records:
            raise NotAdaptableError(f'the {self.name} did not run during the forward pass: the '
                                    'model does not reach the tapped layer, so it cannot be '
                                    'adapted')
        feats, logits = zip(*self._records)
        if len(logits) == 1:
            return TapOutput(logits[0], self.weight, self.bias, feats[0])
        return TapOutput(torch.cat([x.flatten(2) for x in logits], dim=2), self.weight,
                         self.bias, torch.cat([x.flatten(2) for x in feats], dim=2))


#: Decode heads (and segmentors) whose prediction is not one per-pixel linear classifier of a
#: feature map, by class name (the class may come from a package that is not installed), with
#: what the toolkit would need to adapt them.
NOT_PER_PIXEL_LINEAR = {
    'PointHead': (
        'classifies points sampled from the coarse prediction (its classifier is a Conv1d over '
        'point features) and refines the prediction by subdivision, so the scored logits are '
        'not one per-pixel classifier\'s output; adapting it needs a tap that follows the '
        'points through the subdivision steps'),
    'IterativeDecodeHead': (
        'predicts masks with kernels that its kernel update heads recompute for every image '
        '(K-Net), so there are no fixed classifier weights to take anchors from; adapting it '
        'needs anchors from the per-image kernels'),
    'SegmenterMaskTransformerHead': (
        'scores each pixel against class embeddings that its transformer computes for every '
        'image, so there are no fixed classifier weights to take anchors from; adapting it '
        'needs anchors from the per-image class embeddings'),
    'MaskFormerHead': (
        'classifies masks, not pixels: each query predicts a class distribution and a mask, '
        'and a pixel\'s score sums over queries; adapting it needs the entropy gradient and '
        'anchors of the per-query classifier'),
    'Mask2FormerHead': (
        'classifies masks, not pixels: each query predicts a class distribution and a mask, '
        'and a pixel\'s score sums over queries; adapting it needs the entropy gradient and '
        'anchors of the per-query classifier'),
    'SideAdapterCLIPHead': (
        'is open-vocabulary mask classification: its classes are CLIP text embeddings and each '
        'query predicts a mask, so there is no per-pixel linear classifier; adapting it needs '
        'the per-query formulation and anchors from the text embeddings'),
    'MultimodalEncoderDecoder': (
        'is an open-vocabulary segmentor whose classes come from a text encoder (SAN); the '
        'toolkit adapts EncoderDecoder segmentors with a per-pixel linear classifier'),
    'DepthEstimator': (
        'estimates depth (a regression, VPD): it has no classes, so no entropy to minimise and '
        'no classifier to take anchors from'),
}


def refusal_reason(type_name: str) -> str | None:
    """Why a decode head or segmentor class of this name cannot be adapted, or None when the
    toolkit knows no reason (it may still be refused once built)."""
    return NOT_PER_PIXEL_LINEAR.get(type_name)


def _final_head(segmentor: nn.Module) -> tuple[nn.Module, str]:
    """The decode head whose output is the prediction, and how to name it: ``decode_head``, or
    the last stage of a cascade (``CascadeEncoderDecoder``: OCRNet, PointRend)."""
    head = getattr(segmentor, 'decode_head', None)
    if isinstance(head, nn.ModuleList):
        if len(head) == 0:
            raise NotAdaptableError(f'{type(segmentor).__name__} has an empty decode_head list')
        return head[-1], f'decode_head[{len(head) - 1}]'
    if head is None:
        raise NotAdaptableError(f'{type(segmentor).__name__} has no decode_head; the toolkit '
                                'taps the final 1x1 classifier (conv_seg) of a decode head')
    return head, 'decode_head'


def tap_decode_head(segmentor: nn.Module) -> ClassifierTap:
    """Tap the ``conv_seg`` of an MMSeg segmentor's final decode head (the last stage of a
    cascade), with an error naming the model, the head and what is missing when it has none.

    Raises:
        NotAdaptableError: no decode head, a head that does not predict through one per-pixel
            linear classifier (:data:`NOT_PER_PIXEL_LINEAR`), or a ``conv_seg`` that is not a
            1x1 convolution.
    """
    model = type(segmentor).__name__
    head, where = _final_head(segmentor)
    kind = type(head).__name__
    for cls in type(head).__mro__:
        reason = refusal_reason(cls.__name__)
        if reason is not None:
            raise NotAdaptableError(f'{model} cannot be adapted: its {where} ({kind}) {reason}')
    layer = getattr(head, 'conv_seg', None)
    if not isinstance(layer, nn.Module):
        raise NotAdaptableError(
            f'{model} cannot be adapted: its {where} ({kind}) has no conv_seg layer; the '
            'toolkit taps the final 1x1 classifier conv_seg of MMSeg decode heads, so the head '
            'needs one that produces its logits')
    try:
        return ClassifierTap(layer, name=f'{kind}.conv_seg')
    except TypeError as exc:
        raise NotAdaptableError(f'{model} cannot be adapted: its {where} ({kind}): {exc}') from None


def tap_cls_head(classifier: nn.Module) -> ClassifierTap:
    """Tap the last ``nn.Linear`` of an mmpretrain classifier's head (``LinearClsHead.fc``,
    ``VisionTransformerClsHead.layers.head``, ...), or, when the head has none because the
    backbone classifies (VGG and Inception-v3 with ``num_classes``, under a plain ``ClsHead``),
    the model's last ``nn.Linear``.

    Whether that layer really produces the head's scores is checked on the first step.
    """
    head = getattr(classifier, 'head', None)
    if head is None:
        raise NotAdaptableError(f'{type(classifier).__name__} cannot be adapted: it has no head, '
                                'so it extracts features and classifies nothing')
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    where = f'{type(head).__name__} final Linear'
    if not linears:
        linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
        where = f'{type(classifier).__name__} last Linear (the head has none)'
    if not linears:
        raise NotAdaptableError(f'{type(classifier).__name__} cannot be adapted: neither its '
                                f'head ({type(head).__name__}) nor the rest of the model has an '
                                'nn.Linear layer; the toolkit taps the final linear classifier')
    return ClassifierTap(linears[-1], name=where)
