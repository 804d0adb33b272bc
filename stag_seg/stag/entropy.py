"""Shannon entropy of softmax predictions, and the closed-form logit gradients STAG aligns.

With ``p = softmax(l / tau)`` and ``H(p) = -sum_k p_k log p_k`` (docs/design.md, "STAG")::

    s(l) = dH/dl = -(1 / tau) * p * (log p + H)            (gradient='entropy')
    s(l) = dCE(l, y)/dl = (1 / tau) * (p - e_y)             (gradient='cross_entropy')

where ``y`` is the predicted class and ``e_y`` its one-hot vector. No autograd is involved:
both are forward-pass quantities, which is what lets STAG align gradients without a second
backward pass. The entropy gradient shrinks with the confidence in every direction; the cross
entropy's direction depends only on the shape of the off-class distribution ``p_k / (1 - p_y)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['GRADIENTS', 'cross_entropy_grad', 'entropy', 'entropy_grad', 'entropy_and_grad',
           'logit_grad']

#: The logit gradients STAG can align (``STAG(gradient=...)``).
GRADIENTS = ('entropy', 'cross_entropy')


def entropy(logits: Tensor, temperature: float = 1.0, dim: int = 1) -> Tensor:
    """Entropy of ``softmax(logits / temperature)`` along ``dim``.

    Args:
        logits (Tensor): Logits, classes along ``dim``, e.g. (N, C) or (N, C, H, W).
        temperature (float): Softmax temperature tau. Defaults to 1.0.
        dim (int): The class dimension. Defaults to 1.

    Returns:
        Tensor: Entropy in nats, ``logits``' shape without ``dim``.
    """
    log_p = torch.log_softmax(logits / temperature, dim=dim)
    return -(log_p.exp() * log_p).sum(dim)


def entropy_and_grad(logits: Tensor, temperature: float = 1.0,
                     dim: int = 1) -> tuple[Tensor, Tensor]:
    """Entropy ``H`` and its gradient ``s = dH/dl``, in closed form, in one pass.

    Args:
        logits (Tensor): Logits, classes along ``dim``.
        temperature (float): Softmax temperature tau. Defaults to 1.0.
        dim (int): The class dimension. Defaults to 1.

    Returns:
        tuple[Tensor, Tensor]: ``H`` (``logits``' shape without ``dim``) and ``s`` (the shape
        of ``logits``). ``s`` is differentiable w.r.t. ``logits``; its entry at the predicted
        class is never positive.
    """
    log_p = torch.log_softmax(logits / temperature if temperature != 1 else logits, dim=dim)
    p = log_p.exp()
    neg_ent = (p * log_p).sum(dim, keepdim=True)
    # -(p * (log p + H)) with H = -neg_ent, in as few operations (and autograd nodes) as
    # possible: the same value, bit for bit, since negation is exact in floating point
    grad = p * (neg_ent - log_p)
    if temperature != 1:
        grad = grad / temperature
    return -neg_ent.squeeze(dim), grad


def entropy_grad(logits: Tensor, temperature: float = 1.0, dim: int = 1) -> Tensor:
    """Closed-form ``dH/dl`` of ``softmax(logits / temperature)``; see :func:`entropy_and_grad`."""
    return entropy_and_grad(logits, temperature, dim)[1]


def cross_entropy_grad(logits: Tensor,
                       temperature: float = 1.0,
                       dim: int = 1,
                       target: Tensor | None = None) -> Tensor:
    """Closed-form ``dCE/dl = (softmax(l / tau) - e_y) / tau``, the cross entropy with ``y``.

    Args:
        logits (Tensor): Logits, classes along ``dim``.
        temperature (float): Softmax temperature tau. Defaults to 1.0.
        dim (int): The class dimension. Defaults to 1.
        target (Tensor, optional): The class ``y`` of each position (``logits``' shape without
            ``dim``). Defaults to None: the predicted class, ``argmax`` of the logits.

    Returns:
        Tensor: The shape of ``logits``; differentiable w.r.t. ``logits`` (the target is not).
    """
    p = torch.softmax(logits / temperature, dim=dim)
    if target is None:
        target = logits.detach().argmax(dim)
    one_hot = torch.zeros_like(p).scatter_(dim, target.unsqueeze(dim), 1.0)
    return (p - one_hot) / temperature


def logit_grad(logits: Tensor,
               temperature: float = 1.0,
               gradient: str = 'entropy',
               dim: int = 1,
               target: Tensor | None = None) -> Tensor:
    """The logit gradient named by ``gradient`` (``'entropy'`` or ``'cross_entropy'``).

    ``target`` is the cross entropy's class (None: the predicted one); the entropy ignores it.
    """
    if gradient == 'entropy':
        return entropy_grad(logits, temperature, dim)
    if gradient == 'cross_entropy':
        return cross_entropy_grad(logits, temperature, dim, target)
    raise ValueError(f'gradient must be one of {GRADIENTS}, got {gradient!r}')
