"""The STAG loss: cosine alignment of each position's entropy gradient with its class anchor.

For a position with logits ``l``, prediction ``y = argmax l`` and ``s = s(l)``
(:func:`~stag_seg.stag.entropy.entropy_grad`), the cosine depends on ``space``:

- ``'feature'`` (default): ``cos(g, a_y)`` with ``g = W^T s``, the entropy gradient w.r.t. the
  feature entering the classifier. The Gram form never builds ``g``::

      cos = s^T (W a_y) / (sqrt(s^T G s) * |a_y|),   G = W W^T

  (with ``W a_y / |a_y|`` computed once per classifier, :func:`gram_matrices`)

  so only C-dimensional quantities exist per position. ``form='explicit'`` builds ``g``
  (D values per position) and must agree to float precision.
- ``'logit'``: ``cos(s, s_y)``.
- ``'weight'``: the gradient w.r.t. the last layer's weight is ``s z^T`` and the anchor's is
  ``s_y w_y^T``; their cosine factorises as ``cos(s, s_y) * cos(z, w_y)``. Needs ``features``.

``gradient='cross_entropy'`` puts the predicted class's cross-entropy gradient ``p - e_y`` in
place of ``s`` (and the anchors' own, :func:`~stag_seg.stag.anchors.compute_anchors`), in every
space.

The loss is ``sum(m * w * u * (1 - cos)) / sum(m)`` over the positions the method selected (mask
``m``, weights ``w``) whose gradient and anchor are not ~0: a one-hot prediction has no entropy
gradient and is excluded, never turned into NaN. ``u`` is 1, or with ``weighting='entropy'`` the
position's normalised entropy ``H / ln C`` (detached), which silences confident positions.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .anchors import Anchors
from .entropy import GRADIENTS, entropy, logit_grad

__all__ = ['FORMS', 'REWEIGHTS', 'SPACES', 'WEIGHTINGS', 'alignment_multiplier',
           'gram_matrices', 'stag_cosine', 'stag_loss']

SPACES = ('feature', 'logit', 'weight')
FORMS = ('gram', 'explicit')
WEIGHTINGS = ('none', 'entropy')
#: The functions of the alignment that reweight a base method (:func:`alignment_multiplier`).
REWEIGHTS = ('threshold', 'smooth', 'threshold+smooth')


def gram_matrices(weight: Tensor, anchors: Anchors,
                  eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """``G = W W^T`` and ``K = W A^T / |A|`` (column c is ``W a_c / |a_c|``), both (C, C).

    The anchors' norms are folded into ``K`` once, so that a step divides by one norm per
    position only; an anchor of norm ``<= eps`` gets a zero column (its positions are not
    used). Gradients flow into ``weight`` when it requires them; the anchors are constants.
    """
    norms = anchors.features.norm(dim=1)
    inv = torch.where(norms > eps, 1.0 / norms.clamp_min(eps), torch.zeros_like(norms))
    return weight @ weight.t(), (weight @ anchors.features.t()) * inv


def _flatten(x: Tensor) -> Tensor:
    """(N, C, *) -> (N * prod(*), C)."""
    return x.movedim(1, -1).reshape(-1, x.size(1))


def _check_shapes(logits: Tensor, weight: Tensor, features: Tensor | None) -> None:
    if logits.dim() < 2:
        raise ValueError(f'logits must be (N, C, *), got shape {tuple(logits.shape)}')
    if weight.dim() != 2 or weight.size(0) != logits.size(1):
        raise ValueError(f'weight must be (C, D) with C = {logits.size(1)} classes of the logits, '
                         f'got shape {tuple(weight.shape)}')
    if features is not None and (features.shape[0] != logits.shape[0]
                                 or features.shape[2:] != logits.shape[2:]
                                 or features.size(1) != weight.size(1)):
        raise ValueError(f'features must be (N, D, *) = ({logits.size(0)}, {weight.size(1)}, '
                         f'{", ".join(map(str, logits.shape[2:]))}), got {tuple(features.shape)}')


def stag_cosine(logits: Tensor,
                weight: Tensor,
                anchors: Anchors,
                features: Tensor | None = None,
                space: str = 'feature',
                form: str = 'gram',
                temperature: float = 1.0,
                eps: float = 1e-12,
                gram: tuple[Tensor, Tensor] | None = None,
                gradient: str = 'entropy') -> tuple[Tensor, Tensor]:
    """Cosine between each position's logit gradient, mapped to ``space``, and the anchor of its
    predicted class.

    Args:
        logits (Tensor): (N, C, *) logits at the classifier's resolution.
        weight (Tensor): (C, D) classifier weight ``W``.
        anchors (Anchors): From :func:`~stag_seg.stag.anchors.compute_anchors`.
        features (Tensor, optional): (N, D, *) classifier inputs ``z``; needed by
            ``space='weight'``. Defaults to None.
        space (str): ``'feature'``, ``'logit'`` or ``'weight'``. Defaults to ``'feature'``.
        form (str): ``'gram'`` or ``'explicit'``. Defaults to ``'gram'``.
        temperature (float): Softmax temperature tau. Defaults to 1.0.
        eps (float): Norms at or below ``eps`` count as zero. Defaults to 1e-12.
        gram (tuple, optional): Precomputed :func:`gram_matrices` (feature space only).
        gradient (str): ``'entropy'`` or ``'cross_entropy'``; the anchors must be taken with
            the same. Defaults to ``'entropy'``.

    Returns:
        tuple[Tensor, Tensor]: ``cos`` (N, *) (0 where invalid) and ``valid`` (N, *) bool.
    """
    if space not in SPACES:
        raise ValueError(f'space must be one of {SPACES}, got {space!r}')
    if form not in FORMS:
        raise ValueError(f'form must be one of {FORMS}, got {form!r}')
    if gradient not in GRADIENTS:
        raise ValueError(f'gradient must be one of {GRADIENTS}, got {gradient!r}')
    if space == 'weight' and features is None:
        raise ValueError("space='weight' needs the classifier's input features")
    _check_shapes(logits, weight, features)
    out_shape = (logits.size(0), ) + tuple(logits.shape[2:])
    if space == 'feature' and form == 'gram':
        cos, valid = _feature_gram_cosine(logits, weight, anchors, temperature, eps, gram,
                                          gradient)
        return cos.view(out_shape), valid.view(out_shape)
    flat = _flatten(logits)
    pred = flat.detach().argmax(1)
    s = logit_grad(flat, temperature, gradient, dim=1, target=pred)
    s_y = anchors.logit_grads[pred]
    eps2 = eps * eps

    if space == 'feature':  # the explicit form (the Gram form returned above)
        a_sq = anchors.features.pow(2).sum(1)[pred]
        g = s @ weight
        dot = (g * anchors.features[pred]).sum(1)
        norms_sq = (g.pow(2).sum(1), a_sq)
    elif space == 'logit' or form == 'gram':
        dot = (s * s_y).sum(1)
        norms_sq = (s.pow(2).sum(1), s_y.pow(2).sum(1))
        if space == 'weight':
            z = _flatten(features)
            w_y = anchors.weight[pred]
            dot = dot * (z * w_y).sum(1)
            norms_sq += (z.pow(2).sum(1), w_y.pow(2).sum(1))
    else:  # weight space, explicit: materialise the (C, D) outer products per position
        z = _flatten(features)
        grad_w = (s.unsqueeze(2) * z.unsqueeze(1)).flatten(1)
        anchor_w = (s_y.unsqueeze(2) * anchors.weight[pred].unsqueeze(1)).flatten(1)
        dot = (grad_w * anchor_w).sum(1)
        norms_sq = (grad_w.pow(2).sum(1), anchor_w.pow(2).sum(1))

    valid = torch.ones_like(dot, dtype=torch.bool)
    denom = torch.ones_like(dot)
    for n_sq in norms_sq:
        valid &= n_sq.detach() > eps2
        # clamping keeps both the value and the gradient finite where a norm vanishes
        denom = denom * n_sq.clamp_min(eps2).sqrt()
    cos = torch.where(valid, dot / denom, torch.zeros_like(dot))
    return cos.reshape(out_shape), valid.reshape(out_shape)


def _feature_gram_cosine(logits: Tensor, weight: Tensor, anchors: Anchors, temperature: float,
                         eps: float, gram: tuple[Tensor, Tensor] | None,
                         gradient: str) -> tuple[Tensor, Tensor]:
    """The feature-space cosine in the Gram form, (N, P) each, in few operations.

    It works on the (N, C, P) layout as it comes (no copy into rows of C) and multiplies the
    (C, C) matrices into every position at once: ``G s`` for ``|g|^2 = s^T G s`` and ``K^T s``,
    whose entry at the predicted class is ``g . a_y / |a_y|``. A step at the demo's size runs
    about 20 tensor operations here, each a node of the backward pass.
    """
    x = logits.flatten(2) if logits.dim() > 2 else logits.unsqueeze(-1)
    # max(dim).indices is argmax (the first maximum), several times faster along a strided dim
    pred = x.detach().max(1, keepdim=True).indices  # (N, 1, P)
    s = logit_grad(x, temperature, gradient, dim=1, target=pred.squeeze(1))
    g_mat, k_mat = gram if gram is not None else gram_matrices(weight, anchors, eps)
    k_y = k_mat[:, pred.squeeze(1)].movedim(0, 1)  # (N, C, P): W a_y / |a_y| per position
    dot = (s * k_y).sum(1)  # g . a_y / |a_y|
    g_sq = (s * torch.matmul(g_mat, s)).sum(1)  # |g|^2 = s^T G s
    eps2 = eps * eps
    with torch.no_grad():
        anchor_ok = anchors.features.pow(2).sum(1) > eps2
        valid = (g_sq > eps2) & anchor_ok[pred.squeeze(1)]
    cos = dot * g_sq.clamp_min(eps2).rsqrt()
    return torch.where(valid, cos, torch.zeros_like(cos)), valid


def stag_loss(logits: Tensor,
              weight: Tensor,
              anchors: Anchors,
              features: Tensor | None = None,
              mask: Tensor | None = None,
              weights: Tensor | None = None,
              space: str = 'feature',
              form: str = 'gram',
              temperature: float = 1.0,
              eps: float = 1e-12,
              gram: tuple[Tensor, Tensor] | None = None,
              gradient: str = 'entropy',
              weighting: str = 'none') -> tuple[Tensor, Tensor, Tensor]:
    """``mean(1 - cos)`` over the selected, valid positions, weighted by ``weights``.

    Args:
        logits, weight, anchors, features, space, form, temperature, eps, gram, gradient: As
            in :func:`stag_cosine`.
        mask (Tensor, optional): (N, *) or (N,) bool, the positions the method selected.
            Defaults to None (all).
        weights (Tensor, optional): (N, *) or (N,) non-negative per-position or per-sample
            weights from the method. Defaults to None (all ones).
        weighting (str): ``'none'`` or ``'entropy'`` (each position's term times its
            detached ``H / ln C``). Defaults to ``'none'``.

    Returns:
        tuple[Tensor, Tensor, Tensor]: The scalar loss (0, still differentiable, when no
        position is valid), ``cos`` (N, *) and the positions used (N, *) bool.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f'weighting must be one of {WEIGHTINGS}, got {weighting!r}')
    cos, valid = stag_cosine(logits, weight, anchors, features, space, form, temperature, eps,
                             gram, gradient)
    if mask is not None:
        valid = valid & _broadcast(mask, cos, 'mask').bool()
    per_pos = 1.0 - cos
    if weights is not None:
        per_pos = per_pos * _broadcast(weights, cos, 'weights').to(per_pos.dtype)
    if weighting == 'entropy':
        n_classes = logits.size(1)
        uncertainty = entropy(logits.detach(), temperature) / math.log(n_classes) \
            if n_classes > 1 else torch.zeros_like(per_pos)
        per_pos = per_pos * uncertainty.to(per_pos.dtype)
    total = torch.where(valid, per_pos, torch.zeros_like(per_pos)).sum()
    return total / valid.sum().clamp_min(1), cos, valid


def _broadcast(x: Tensor, like: Tensor, name: str) -> Tensor:
    """Per-sample (N,) or per-position (N, *) -> (N, *)."""
    if x.shape == like.shape:
        return x
    if x.dim() == 1 and x.size(0) == like.size(0):
        return x.view(-1, *([1] * (like.dim() - 1))).expand_as(like)
    raise ValueError(f'{name} must have shape (N,) = ({like.size(0)},) or (N, *) = '
                     f'{tuple(like.shape)}, got {tuple(x.shape)}')


def alignment_multiplier(cos: Tensor,
                         valid: Tensor,
                         reweight: str = 'smooth',
                         threshold: float = 0.0,
                         power: float = 1.0) -> Tensor:
    """The weighting reading: a detached multiplier (N, *) of the base method's per-position
    loss terms, from each position's alignment ``cos`` (:func:`stag_cosine`).

    - ``'threshold'``: 1 where ``cos >= threshold``, else 0: a position whose entropy gradient
      disagrees with its class's anchor is left out of the base loss;
    - ``'smooth'``: ``((1 + cos) / 2) ** power``, from 0 (opposed) to 1 (aligned);
    - ``'threshold+smooth'``: their product.

    Positions without a defined cosine (``valid`` False: a one-hot prediction) keep 1: the
    alignment says nothing about them.

    Args:
        cos (Tensor): (N, *) cosines. valid (Tensor): (N, *) bool.
        reweight (str): One of :data:`REWEIGHTS`. Defaults to ``'smooth'``.
        threshold (float): The threshold's cosine. Defaults to 0.0.
        power (float): The smooth weight's exponent, > 0. Defaults to 1.0.
    """
    if reweight not in REWEIGHTS:
        raise ValueError(f'reweight must be one of {REWEIGHTS}, got {reweight!r}')
    if power <= 0:
        raise ValueError(f'power must be > 0, got {power}')
    cos = cos.detach()
    multiplier = torch.ones_like(cos)
    if 'threshold' in reweight:
        multiplier = multiplier * (cos >= threshold).to(cos.dtype)
    if 'smooth' in reweight:
        multiplier = multiplier * ((1 + cos) / 2).clamp_min(0).pow(power)
    return torch.where(valid, multiplier, torch.ones_like(multiplier))
