"""How a STAG reading acts on the logits: its descent direction against the entropy's, whether a
collapse to one class lowers it, and how sharp a classifier's anchors are.

These are the measurements behind the choice of STAG's default reading (docs/design.md, "STAG"):

- :func:`descent_cosines`: per position, the cosine between the descent direction of the
  position's STAG term and that of its entropy, both w.r.t. its own logits. A reading whose
  cosine is mostly positive acts partly as more entropy minimisation, which can drive a model
  into collapse. The batch-level cosine compares the two summed gradients (flattened over the
  positions), where ``weighting`` matters: it rescales positions but turns none of them.
- :func:`collapse_curve`: the loss along a path that makes one class win everywhere (its logit
  raised by ``t`` at every position). A curve that falls means collapse lowers the loss.
- :func:`anchor_sharpness`: the prototypes' ``max q_c`` and ``S_c / ln C`` per anchor
  temperature.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from stag_seg.stag.anchors import compute_anchors, prototype_logits
from stag_seg.stag.entropy import entropy
from stag_seg.stag.loss import stag_loss

__all__ = ['anchor_sharpness', 'collapse_curve', 'descent_cosines', 'reading_loss']


def reading_loss(logits: Tensor,
                 weight: Tensor,
                 bias: Tensor | None = None,
                 features: Tensor | None = None,
                 **reading) -> tuple[Tensor, Tensor]:
    """The unweighted STAG loss of ``reading`` (STAG's options but ``weight``) and the used mask.

    The anchors are taken from ``weight`` and ``bias`` with the reading's gradient, temperature
    and anchor temperature.
    """
    reading = dict(reading)
    temperature = reading.pop('temperature', 1.0)
    anchor_temperature = reading.pop('anchor_temperature', None) or temperature
    gradient = reading.pop('gradient', 'entropy')
    use_bias = reading.pop('use_bias', True)
    anchors = compute_anchors(weight, bias, anchor_temperature, use_bias, gradient)
    loss, _, used = stag_loss(logits, weight, anchors, features,
                              space=reading.pop('space', 'feature'),
                              form=reading.pop('form', 'gram'), temperature=temperature,
                              gradient=gradient, weighting=reading.pop('weighting', 'none'),
                              eps=reading.pop('eps', 1e-12))
    if reading:
        raise TypeError(f'unknown STAG options: {sorted(reading)}')
    return loss, used


def descent_cosines(logits: Tensor,
                    weight: Tensor,
                    bias: Tensor | None = None,
                    features: Tensor | None = None,
                    **reading) -> dict[str, float]:
    """How the reading's descent direction on the logits relates to the entropy's.

    Args:
        logits (Tensor): (N, C) or (N, C, *) logits of a model.
        weight, bias, features: The classifier, and its inputs (``space='weight'``).
        **reading: STAG's options (``space``, ``gradient``, ``weighting``, ``temperature``,
            ``anchor_temperature``, ``use_bias``).

    Returns:
        dict: Over the positions the loss uses, the fraction whose cosine is positive
        (``positive``), its quartiles (``q25``, ``median``, ``q75``), the number of positions
        (``positions``), and the cosine of the summed gradients (``batch``).
    """
    x = logits.detach().double().clone().requires_grad_(True)
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else None
    z = features.detach().double() if features is not None else None
    loss, used = reading_loss(x, w, b, z, **reading)
    (g_stag, ) = torch.autograd.grad(loss, x)
    y = logits.detach().double().clone().requires_grad_(True)
    temperature = reading.get('temperature', 1.0)
    (g_ent, ) = torch.autograd.grad(entropy(y, temperature).sum(), y)
    flat_s = g_stag.movedim(1, -1).reshape(-1, x.size(1))[used.flatten()]
    flat_h = g_ent.movedim(1, -1).reshape(-1, x.size(1))[used.flatten()]
    if flat_s.size(0) == 0:
        raise ValueError('no position is used by the loss (every prediction one-hot?)')
    # descent directions are the negated gradients; the cosine of two negations is the same
    cos = torch.nn.functional.cosine_similarity(flat_s, flat_h, dim=1, eps=1e-300)
    q = torch.quantile(cos, torch.tensor([0.25, 0.5, 0.75], dtype=cos.dtype))
    batch = torch.nn.functional.cosine_similarity(flat_s.flatten(), flat_h.flatten(), dim=0,
                                                  eps=1e-300)
    return dict(positive=float((cos > 0).double().mean()), q25=float(q[0]),
                median=float(q[1]), q75=float(q[2]), positions=int(cos.numel()),
                batch=float(batch))


def collapse_curve(logits: Tensor,
                   weight: Tensor,
                   bias: Tensor | None = None,
                   features: Tensor | None = None,
                   shifts: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
                   target: int | None = None,
                   **reading) -> dict:
    """The loss when one class is made to win everywhere, and at its prototype.

    Args:
        logits, weight, bias, features, **reading: As in :func:`descent_cosines`.
        shifts (Sequence[float]): How far the class's logit is raised at every position.
        target (int, optional): The class; None: the most predicted one.

    Returns:
        dict: ``target``; ``shifts``; ``loss`` (one per shift); ``predicted`` (the fraction of
        positions predicting ``target`` at each shift); ``at_prototype``, the loss when every
        position's feature is the class's own weight ``w_target``: 0, a global minimum, for
        every reading whose anchor is the gradient there (not with an ``anchor_temperature``
        other than ``temperature``).
    """
    x = logits.detach().double()
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else None
    z = features.detach().double() if features is not None else None
    pred = x.argmax(1)
    if target is None:
        target = int(torch.bincount(pred.flatten(), minlength=x.size(1)).argmax())
    unit = torch.zeros(x.size(1), dtype=x.dtype)
    unit[target] = 1.0
    unit = unit.view(1, -1, *([1] * (x.dim() - 2)))
    losses, predicted = [], []
    for t in shifts:
        shifted = x + t * unit
        losses.append(float(reading_loss(shifted, w, b, z, **reading)[0]))
        predicted.append(float((shifted.argmax(1) == target).double().mean()))
    # every position at the class's prototype: logits W w_target + b, feature w_target
    proto = prototype_logits(w, b if reading.get('use_bias', True) else None)[target]
    proto_logits = proto.view(1, -1).expand(4, -1)
    proto_feats = w[target].view(1, -1).expand(4, -1) if z is not None else None
    at_proto = float(reading_loss(proto_logits, w, b, proto_feats, **reading)[0])
    return dict(target=target, shifts=list(shifts), loss=losses, predicted=predicted,
                at_prototype=at_proto)


def anchor_sharpness(weight: Tensor,
                     bias: Tensor | None = None,
                     temperatures: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
                     use_bias: bool = True) -> list[dict[str, float]]:
    """The prototypes' softmax ``q_c`` per anchor temperature: how close to one-hot they are.

    Returns:
        list[dict]: Per temperature, the mean and the minimum over classes of ``max q_c``, the
        mean ``S_c / ln C``, and the fraction of prototypes predicted as their own class.
    """
    w = weight.detach().double()
    b = bias.detach().double() if (bias is not None and use_bias) else None
    logits = prototype_logits(w, b)
    n = logits.size(0)
    rows = []
    for tau in temperatures:
        q = torch.softmax(logits / tau, 1)
        ent = entropy(logits, tau) / math.log(n)
        rows.append(dict(temperature=float(tau), max_q_mean=float(q.max(1).values.mean()),
                         max_q_min=float(q.max(1).values.min()),
                         entropy_norm_mean=float(ent.mean()),
                         own_class=float((q.argmax(1) == torch.arange(n)).double().mean())))
    return rows
