"""Shannon entropy of softmax predictions and its closed-form gradient w.r.t. the logits.

With ``p = softmax(l / tau)`` and ``H(p) = -sum_k p_k log p_k`` (docs/design.md, "STAG")::

    s(l) = dH/dl = -(1 / tau) * p * (log p + H)

No autograd is involved: ``s`` is a forward-pass quantity, which is what lets STAG align
entropy gradients without a second backward pass.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['entropy', 'entropy_grad', 'entropy_and_grad']


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
    log_p = torch.log_softmax(logits / temperature, dim=dim)
    p = log_p.exp()
    ent = -(p * log_p).sum(dim, keepdim=True)
    grad = -(p * (log_p + ent)) / temperature
    return ent.squeeze(dim), grad


def entropy_grad(logits: Tensor, temperature: float = 1.0, dim: int = 1) -> Tensor:
    """Closed-form ``dH/dl`` of ``softmax(logits / temperature)``; see :func:`entropy_and_grad`."""
    return entropy_and_grad(logits, temperature, dim)[1]
