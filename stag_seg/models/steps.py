"""The adapted ``test_step`` of each model family, shared by the wrappers and ``TTAHook``.

Both families hand the method the same structure (a :class:`~stag_seg.models.tap.TapOutput`);
only how a batch is predicted differs:

- MMSeg segmentors (``EncoderDecoder`` and subclasses): ``inference()`` with gradients and the
  tap on ``decode_head.conv_seg``, then ``postprocess_result()`` on the detached logits;
- mmpretrain classifiers (``ImageClassifier``): ``predict()`` with gradients and the tap on the
  head's last ``nn.Linear``, the stored scores detached afterwards.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from ..engine.adapt import StepContext, adapt_step
from .tap import ClassifierTap, tap_decode_head

if TYPE_CHECKING:
    from ..methods.base import BaseTTAMethod
    from .tap import TapOutput

__all__ = ['adapted_test_step', 'classifier_logits', 'classifier_test_step', 'family_logits',
           'model_family', 'segmentor_logits', 'segmentor_test_step', 'tap_cls_head', 'tap_model']


def model_family(model: nn.Module) -> str:
    """``'segmentor'`` or ``'classifier'``; a ``TypeError`` naming the model otherwise."""
    if hasattr(model, 'decode_head') and hasattr(model, 'inference'):
        return 'segmentor'
    if hasattr(model, 'head') and hasattr(model, 'extract_feat') and hasattr(model, 'predict'):
        return 'classifier'
    raise TypeError(f'{type(model).__name__} is neither an MMSeg segmentor (decode_head, '
                    'inference) nor an mmpretrain classifier (head, extract_feat, predict); '
                    'the toolkit cannot tap its classifier')


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


def tap_model(model: nn.Module) -> ClassifierTap:
    """The classifier tap of a segmentor or a classifier."""
    return tap_decode_head(model) if model_family(model) == 'segmentor' else tap_cls_head(model)


def segmentor_logits(model: nn.Module, inputs: Tensor) -> Tensor:
    """A segmentor's ``conv_seg`` logits at the decode head's resolution (whole image)."""
    return model.decode_head.forward(model.extract_feat(inputs))


def classifier_logits(model: nn.Module, inputs: Tensor) -> Tensor:
    """A classifier's scores before the softmax: the head's output."""
    return model.head(model.extract_feat(inputs))


def family_logits(model: nn.Module) -> Callable[[nn.Module, Tensor], Tensor]:
    """``logits_fn`` of ``model``'s family (see :class:`~stag_seg.engine.adapt.StepContext`)."""
    return segmentor_logits if model_family(model) == 'segmentor' else classifier_logits


def segmentor_test_step(model: nn.Module, method: 'BaseTTAMethod', tap: ClassifierTap | None,
                        data: dict | tuple | list) -> list:
    """Predict a batch with the current weights, then adapt on it once (MMSeg segmentors)."""
    data = model.data_preprocessor(data, False)
    inputs, samples = data['inputs'], data['data_samples']
    if samples is not None:
        metas = [dict(sample.metainfo) for sample in samples]  # never write into theirs
    else:
        shape = inputs.shape[2:]
        metas = [dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                      padding_size=[0, 0, 0, 0]) for _ in range(inputs.size(0))]
    ctx = StepContext(inputs, model, segmentor_logits, tap,
                      valid=lambda logits: padding_mask(logits, inputs, metas),
                      metas=[dict(m) for m in metas])
    seg_logits, own = adapt_step(method, ctx,
                                 lambda: model.inference(inputs, [dict(m) for m in metas]))
    with torch.no_grad():
        return model.postprocess_result((seg_logits if own is None else own).detach(), samples)


def classifier_test_step(model: nn.Module, method: 'BaseTTAMethod', tap: ClassifierTap | None,
                         data: dict | tuple | list) -> list:
    """Predict a batch with the current weights, then adapt on it once (mmpretrain)."""
    data = model.data_preprocessor(data, False)
    inputs, samples = data['inputs'], data.get('data_samples')
    check = _check_scores if tap is not None and not tap.checked else None
    ctx = StepContext(inputs, model, classifier_logits, tap)
    predictions, own = adapt_step(method, ctx, lambda: model.predict(inputs, samples),
                                  check=check)
    for i, sample in enumerate(predictions):
        if own is not None:
            score = own[i].detach().softmax(0)
            sample.set_pred_score(score).set_pred_label(score.argmax(0, keepdim=True))
        elif 'pred_score' in sample:
            sample.pred_score = sample.pred_score.detach()
    if tap is not None:
        tap.checked = True
    return predictions


def _check_scores(out: 'TapOutput', predictions: list) -> None:
    """The tapped layer must produce the scores the head predicted from (softmax of logits)."""
    scores = torch.stack([s.pred_score.detach() for s in predictions])
    logits = out.logits.detach()
    if logits.shape != scores.shape or not torch.allclose(logits.softmax(1), scores, atol=1e-5):
        raise TypeError('the tapped layer does not produce the head\'s scores (softmax of its '
                        'output differs from pred_score): the head does more after its last '
                        'nn.Linear, so it cannot be adapted with the tap')


def adapted_test_step(model: nn.Module) -> Callable[..., list]:
    """The adapted ``test_step`` function of ``model``'s family."""
    return {'segmentor': segmentor_test_step,
            'classifier': classifier_test_step}[model_family(model)]


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
