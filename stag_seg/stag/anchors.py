"""Anchors from the classifier's own weights (self-structural entropy).

Each class weight ``w_c`` (row c of ``W``, shape (C, D)) is fed to the classifier as if it were
a feature (docs/design.md, "STAG")::

    q_c = softmax((W w_c + b) / tau)      S_c = H(q_c)      (self-structural entropy)
    s_c = dH/dl at l = W w_c + b          a_c = W^T s_c      (the anchor: dH/dz at z = w_c)

``q_c`` depends on W only through row c of the Gram matrix ``G = W W^T``. With
``gradient='cross_entropy'`` the anchor is the cross entropy's gradient towards the class itself,
``s_c = (q_c - e_c) / tau``. Trained classifiers have near one-hot ``q_c`` (their prototypes are
confidently their own class), so ``s_c`` is tiny and shaped by the few largest off-class
probabilities; an anchor temperature above 1 softens ``q_c`` (``STAG(anchor_temperature=...)``).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .entropy import cross_entropy_grad, entropy_and_grad

__all__ = ['Anchors', 'compute_anchors', 'prototype_logits']


class Anchors(NamedTuple):
    """What STAG needs of the classifier's prototypes, all detached.

    Attributes:
        logit_grads (Tensor): (C, C), row c is ``s_c``.
        features (Tensor): (C, D), row c is the anchor ``a_c = W^T s_c``.
        weight (Tensor): (C, D), the class weights ``w_c`` the anchors were taken from.
        entropy (Tensor): (C,), the self-structural entropies ``S_c``.
    """
    logit_grads: Tensor
    features: Tensor
    weight: Tensor
    entropy: Tensor


def prototype_logits(weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Logits of every class weight seen as a feature: ``W W^T + b`` (row c is ``W w_c + b``).

    Args:
        weight (Tensor): Classifier weight ``W``, (C, D).
        bias (Tensor, optional): Classifier bias ``b``, (C,). Defaults to None.

    Returns:
        Tensor: (C, C).
    """
    logits = weight @ weight.t()
    return logits if bias is None else logits + bias.unsqueeze(0)


@torch.no_grad()
def compute_anchors(weight: Tensor,
                    bias: Tensor | None = None,
                    temperature: float = 1.0,
                    use_bias: bool = True,
                    gradient: str = 'entropy') -> Anchors:
    """Anchors of every class, computed in float64 and returned in ``weight``'s dtype.

    Args:
        weight (Tensor): Classifier weight ``W``, (C, D).
        bias (Tensor, optional): Classifier bias ``b``, (C,). Defaults to None.
        temperature (float): Softmax temperature tau. Defaults to 1.0.
        use_bias (bool): Add ``b`` to the prototype logits. Defaults to True.
        gradient (str): ``'entropy'`` (``s_c = dH/dl``) or ``'cross_entropy'``
            (``s_c = dCE(., c)/dl``, towards class c). Defaults to ``'entropy'``.

    Returns:
        Anchors: Detached constants; gradients never flow into the anchors.
    """
    w64 = weight.detach().double()
    b64 = bias.detach().double() if (bias is not None and use_bias) else None
    logits = prototype_logits(w64, b64)
    ent, grads = entropy_and_grad(logits, temperature, dim=1)
    if gradient == 'cross_entropy':
        own = torch.arange(logits.size(0), device=logits.device)
        grads = cross_entropy_grad(logits, temperature, dim=1, target=own)
    elif gradient != 'entropy':
        raise ValueError(f"gradient must be 'entropy' or 'cross_entropy', got {gradient!r}")
    dtype = weight.dtype
    return Anchors(grads.to(dtype), (grads @ w64).to(dtype), weight.detach().clone(),
                   ent.to(dtype))
