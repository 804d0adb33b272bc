"""The STAG loss computed the naive way: autograd for ``dH/dz``, with a double backward.

The tests' independent path, which the closed forms of ``stag_seg.stag`` are checked against;
``tools/benchmark_overhead.py`` borrows it as the baseline whose cost STAG avoids. It builds the
graph of the gradient (``create_graph=True``), so the final backward differentiates through a
backward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stag_seg.stag.anchors import Anchors
from stag_seg.stag.entropy import entropy

__all__ = ['stag_loss_autograd']


def stag_loss_autograd(features: Tensor,
                       weight: Tensor,
                       bias: Tensor | None,
                       anchors: Anchors,
                       mask: Tensor | None = None,
                       temperature: float = 1.0,
                       eps: float = 1e-12) -> Tensor:
    """Feature-space STAG loss with ``g = dH/dz`` from autograd.

    Args:
        features (Tensor): (N, D, *) classifier inputs ``z`` (part of the model's graph).
        weight (Tensor): (C, D). bias (Tensor, optional): (C,).
        anchors (Anchors): From :func:`~stag_seg.stag.anchors.compute_anchors`.
        mask (Tensor, optional): (N, *) bool positions to use. Defaults to None (all).
        temperature (float): Softmax temperature. eps (float): Zero-norm threshold.

    Returns:
        Tensor: ``mean(1 - cos(g, a_y))`` over the used positions, differentiable (through a
        double backward).
    """
    z = features if features.requires_grad else features.detach().requires_grad_(True)
    logits = torch.einsum('nd...,cd->nc...', z, weight)
    if bias is not None:
        logits = logits + bias.view(1, -1, *([1] * (logits.dim() - 2)))
    # each position's entropy depends only on its own z, so the gradient of the sum is
    # the per-position gradient
    (grad, ) = torch.autograd.grad(entropy(logits, temperature).sum(), z, create_graph=True)
    pred = logits.detach().argmax(1)
    anchor = anchors.features[pred].movedim(-1, 1)  # (N, D, *)
    valid = (grad.detach().flatten(2).norm(dim=1).view(pred.shape) > eps) if grad.dim() > 2 \
        else grad.detach().norm(dim=1) > eps
    if mask is not None:
        valid = valid & mask.bool()
    cos = F.cosine_similarity(grad, anchor, dim=1, eps=eps)
    return torch.where(valid, 1 - cos, torch.zeros_like(cos)).sum() / valid.sum().clamp_min(1)
