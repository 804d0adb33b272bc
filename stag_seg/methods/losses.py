"""The losses RoTTA, RMT and ROID are made of, as their reference code writes them
(mariodoebler/test-time-adaptation ``utils/losses.py`` and ``methods/rmt.py``; BIT-DA/RoTTA
``softmax_entropy``): on ``log_softmax`` of logits, without clamps, the gradient flowing into
every argument that has one.

CoTTA's soft labels are probabilities (its teacher averages probabilities over views), so it
keeps its own helper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['soft_cross_entropy', 'soft_likelihood_ratio', 'softmax_entropy',
           'supervised_contrastive', 'symmetric_cross_entropy']


def softmax_entropy(logits: Tensor) -> Tensor:
    """``-sum_c softmax(x)_c log softmax(x)_c`` per sample, (N, C) -> (N,), written as the
    references write it (``Entropy``); ``stag_seg.stag.entropy`` exponentiates ``log_softmax``
    instead, which differs in the last bits, and ROID's min-max normalisation magnifies those."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


def soft_cross_entropy(logits: Tensor, target_logits: Tensor) -> Tensor:
    """``-sum_c softmax(t)_c log softmax(x)_c`` per sample: (N, C) logits -> (N,)."""
    return -(target_logits.softmax(1) * logits.log_softmax(1)).sum(1)


def symmetric_cross_entropy(logits: Tensor, target_logits: Tensor, alpha: float = 0.5) -> Tensor:
    """``(1 - alpha) CE(x, t) + alpha CE(t, x)`` per sample, both directions on logits:
    ``-(1-a) sum softmax(t) log softmax(x) - a sum softmax(x) log softmax(t)``; (N,)."""
    forward = (target_logits.softmax(1) * logits.log_softmax(1)).sum(1)
    reverse = (logits.softmax(1) * target_logits.log_softmax(1)).sum(1)
    return -(1 - alpha) * forward - alpha * reverse


def soft_likelihood_ratio(logits: Tensor, clip: float = 0.99, eps: float = 1e-5) -> Tensor:
    """``-sum_c p_c log(p_c / (1 - p_c) + eps)`` with ``p = min(softmax(x), clip)``, per sample
    (ROID, Eq. 1); where ``p`` is clipped its gradient is zero, as in the reference. (N,)."""
    probs = torch.clamp(logits.softmax(1), min=0.0, max=clip)
    return -(probs * torch.log(probs / (torch.ones_like(probs) - probs) + eps)).sum(1)


def supervised_contrastive(views: Tensor, projector: nn.Module, temperature: float) -> Tensor:
    """RMT's contrastive term: SupCon (Khosla et al., NeurIPS 2020) without labels, where the
    positives of a view are the other views of its sample.

    Args:
        views (Tensor): (B, V, D): V views of each of B samples.
        projector (nn.Module): Applied to every view before the L2 normalisation.
        temperature (float): Of the similarities.

    Returns:
        Tensor: Over the V * B anchors (view-major), the mean of minus the mean log-probability
        of the anchor's V - 1 positives, against every view but itself; the similarities are
        shifted by their detached row maximum first, as the reference does.
    """
    batch, num_views = views.shape[:2]
    z = F.normalize(projector(torch.cat(torch.unbind(views, dim=1), dim=0)), p=2, dim=1)
    sim = torch.matmul(z, z.T) / temperature
    sim = sim - sim.max(dim=1, keepdim=True).values.detach()
    not_self = 1 - torch.eye(batch * num_views, dtype=sim.dtype, device=sim.device)
    positives = torch.eye(batch, dtype=sim.dtype, device=sim.device).repeat(
        num_views, num_views) * not_self
    log_prob = sim - torch.log((torch.exp(sim) * not_self).sum(1, keepdim=True))
    return -((positives * log_prob).sum(1) / positives.sum(1)).view(num_views, batch).mean()
