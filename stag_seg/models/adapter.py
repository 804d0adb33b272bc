"""The adapter: one per adapted model. It decides the model's family once, by type, attaches the
method to the model and runs the adapted ``test_step``.

Both families hand the method the same structure (a :class:`~stag_seg.structures.TapOutput`);
only how a batch is predicted differs:

- MMSeg segmentors (``EncoderDecoder`` and its subclasses): ``inference()`` with gradients and
  the tap on ``decode_head.conv_seg``, then ``postprocess_result()`` on the detached logits;
- mmpretrain classifiers (``ImageClassifier`` and its subclasses): ``predict()`` with gradients
  and the tap on the head's last ``nn.Linear``, the stored scores detached afterwards.

Every output data sample carries the step's statistics in its metainfo
(:func:`stag_seg.structures.attach_stats`), so the loop, the hooks and the visualizer all read
them from the outputs.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor, nn

from .. import compat
from ..methods import BaseTTAMethod, Step, adapt_step
from ..structures import NotAdaptableError, StepContext, TapOutput, attach_stats
from .tap import ClassifierTap, refusal_reason, tap_cls_head, tap_decode_head

__all__ = ['Adapter', 'ClassifierAdapter', 'SegmentorAdapter', 'build_adapter',
           'classifier_logits', 'padding_mask', 'segmentor_logits']


def segmentor_logits(model: nn.Module, inputs: Tensor) -> Tensor:
    """A segmentor's ``conv_seg`` logits at the decode head's resolution (whole image); for a
    cascade (``CascadeEncoderDecoder``) those of its last stage, each stage fed the one
    before."""
    feats = model.extract_feat(inputs)
    heads = model.decode_head
    if not isinstance(heads, nn.ModuleList):
        return heads.forward(feats)
    out = heads[0].forward(feats)
    for head in heads[1:]:
        out = head.forward(feats, out)
    return out


def classifier_logits(model: nn.Module, inputs: Tensor) -> Tensor:
    """A classifier's scores before the softmax: the head's output."""
    return model.head(model.extract_feat(inputs))


class Adapter:
    """Attaches one method to one model and runs its adapted ``test_step``.

    Subclasses fix the family: the model type they accept (:attr:`model_type`), how its
    classifier is tapped, how any model of the family is run to its logits
    (:attr:`logits_fn`) and how a batch is predicted (:meth:`_step`).

    Args:
        model (nn.Module): The model to adapt, of :attr:`model_type`.
        method (BaseTTAMethod): The method, built and not yet configured.
    """

    #: ``'segmentor'`` or ``'classifier'``.
    family: str = ''
    #: The upstream base class of the models this adapter accepts.
    model_type: type = nn.Module
    #: ``logits_fn(model, inputs)``: the classifier's logits of any model of the family.
    logits_fn: Callable[[nn.Module, Tensor], Tensor]

    def __init__(self, model: nn.Module, method: BaseTTAMethod) -> None:
        if not isinstance(model, self.model_type):
            raise TypeError(f'{type(self).__name__} adapts {self.model_type.__name__} models, '
                            f'got {type(model).__name__}')
        self.model = model
        self.method = method
        self.tap: ClassifierTap | None = None

    def __repr__(self) -> str:
        return f'{type(self).__name__}({type(self.model).__name__}, {self.method!r})'

    @property
    def attached(self) -> bool:
        return self.method.configured

    def attach(self) -> None:
        """Prepare the model for the method: SyncBN without a process group, the tap, the
        modes and the parameters the method adapts (its ``configure``)."""
        compat.revert_sync_batchnorm(self.model)
        if self.method.needs_grad:
            self.tap = self.make_tap()
        self.method.configure(self.model, logits_fn=type(self).logits_fn, tap=self.tap)

    def detach(self) -> None:
        """Undo :meth:`attach` (modes, ``requires_grad``); the weights stay as they are."""
        self.method.release()
        self.tap = None

    def make_tap(self) -> ClassifierTap:
        raise NotImplementedError

    def test_step(self, data: dict | tuple | list) -> list:
        """Predict a batch with the current weights, then adapt on it once; the outputs carry
        the step's statistics."""
        if not self.attached:
            self.attach()
        outputs, step = self._step(data)
        attach_stats(outputs, step.stats, step.nonfinite)
        return outputs

    def _step(self, data: dict | tuple | list) -> tuple[list, Step]:
        raise NotImplementedError


class SegmentorAdapter(Adapter):
    """MMSeg segmentors: slide or whole inference with the tap on ``decode_head.conv_seg``."""

    family = 'segmentor'
    model_type = EncoderDecoder
    logits_fn = staticmethod(segmentor_logits)

    def make_tap(self) -> ClassifierTap:
        return tap_decode_head(self.model)

    def _step(self, data: dict | tuple | list) -> tuple[list, Step]:
        model = self.model
        data = model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        if samples is not None:
            metas = [dict(sample.metainfo) for sample in samples]  # never write into theirs
        else:
            shape = inputs.shape[2:]
            metas = [dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                          padding_size=[0, 0, 0, 0]) for _ in range(inputs.size(0))]
        ctx = StepContext(inputs, model, segmentor_logits, self.tap,
                          valid=lambda logits: padding_mask(logits, inputs, metas),
                          metas=[dict(m) for m in metas])
        step = adapt_step(self.method, ctx,
                          lambda x: model.inference(x, [dict(m) for m in metas]))
        seg_logits = step.result if step.prediction is None else step.prediction
        with torch.no_grad():
            return model.postprocess_result(seg_logits.detach(), samples), step


class ClassifierAdapter(Adapter):
    """mmpretrain classifiers: ``predict()`` with the tap on the head's last ``nn.Linear``."""

    family = 'classifier'
    model_type = ImageClassifier
    logits_fn = staticmethod(classifier_logits)

    def make_tap(self) -> ClassifierTap:
        return tap_cls_head(self.model)

    def _step(self, data: dict | tuple | list) -> tuple[list, Step]:
        model, tap = self.model, self.tap
        data = model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data.get('data_samples')
        check = (partial(_check_scores, model=model, tap=tap)
                 if tap is not None and not tap.checked else None)
        ctx = StepContext(inputs, model, classifier_logits, tap)
        step = adapt_step(self.method, ctx, lambda x: model.predict(x, samples), check=check)
        for i, sample in enumerate(step.result):
            if step.prediction is not None:
                score = step.prediction[i].detach().softmax(0)
                sample.set_pred_score(score).set_pred_label(score.argmax(0, keepdim=True))
            elif 'pred_score' in sample:
                sample.pred_score = sample.pred_score.detach()
        if tap is not None:
            tap.checked = True
        return step.result, step


#: The families, tried in order.
ADAPTERS: tuple[type[Adapter], ...] = (SegmentorAdapter, ClassifierAdapter)


def build_adapter(model: nn.Module, method: BaseTTAMethod) -> Adapter:
    """The adapter of ``model``'s family, decided by its type.

    Raises:
        NotAdaptableError: ``model`` is neither an MMSeg ``EncoderDecoder`` nor an mmpretrain
            ``ImageClassifier``.
    """
    for adapter in ADAPTERS:
        if isinstance(model, adapter.model_type):
            return adapter(model, method)
    name = type(model).__name__
    reason = next((refusal_reason(c.__name__) for c in type(model).__mro__
                   if refusal_reason(c.__name__)), None)
    raise NotAdaptableError(f'{name} cannot be adapted: it ' + (reason or (
        'is neither an MMSeg segmentor (EncoderDecoder) nor an mmpretrain classifier '
        '(ImageClassifier), so the toolkit cannot tap its classifier')))


def _check_scores(out: TapOutput, predictions: list, model: nn.Module, tap: ClassifierTap
                  ) -> None:
    """The tapped layer must produce the scores the head predicted from (softmax of logits)."""
    scores = torch.stack([s.pred_score.detach() for s in predictions])
    logits = out.logits.detach()
    if logits.shape != scores.shape or not torch.allclose(logits.softmax(1), scores, atol=1e-5):
        head = type(getattr(model, 'head', None)).__name__
        raise NotAdaptableError(
            f'{type(model).__name__} cannot be adapted: the softmax of its tapped layer '
            f'({tap.name}) is not the scores its head ({head}) predicts, so the head does more '
            'after that layer (a distilled DeiT or a Conformer averages two classifiers); '
            'adapting it needs a tap on the classifier the scores come from')


def padding_mask(logits: Tensor, inputs: Tensor, metas: list[dict]) -> Tensor | None:
    """(N, h, w) mask of the logits that cover image content rather than batch padding.

    Reads the padding (left, right, top, bottom) the way MMSeg's ``postprocess_result`` does
    (``img_padding_size`` from the data preprocessor, else ``padding_size``); None when nothing
    is padded or the logits are not one map.
    """
    pads = [m.get('img_padding_size', m.get('padding_size', [0, 0, 0, 0])) for m in metas]
    if logits.dim() != 4 or not any(any(p) for p in pads):
        return None
    height, width = inputs.shape[2:]
    h_out, w_out = logits.shape[2:]
    rows = (torch.arange(h_out, device=logits.device).view(-1, 1) + 0.5) * height / h_out
    cols = (torch.arange(w_out, device=logits.device).view(1, -1) + 0.5) * width / w_out
    return torch.stack([(rows >= top) & (rows < height - bottom) & (cols >= left)
                        & (cols < width - right) for left, right, top, bottom in pads])
