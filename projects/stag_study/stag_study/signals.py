"""Does STAG's alignment know when a prediction is wrong? Signals per position and their AUROC.

A signal scores each sample (or pixel); its AUROC is the probability that a correct prediction
scores higher than a wrong one (0.5: no information; below 0.5: it ranks them the wrong way).
The signals (:func:`position_signals`):

- ``cos/<space>/<gradient>``: the alignment ``cos(g, a_y)`` of STAG's reading in ``space``
  (feature, logit, weight) with the ``gradient`` (entropy, cross_entropy), as
  :func:`stag_seg.stag.stag_cosine` computes it;
- ``neg_entropy`` and ``max_softmax``: the confidence signals every selection method uses;
- ``plpd``: DeYO's pseudo-label probability difference, where the caller computes it;
- ``resid/<signal>``: what is left of a cosine after the max softmax is regressed out of it
  (:func:`residual`), its information beyond the confidence.
"""
from __future__ import annotations

import torch
from torch import Tensor

from stag_seg.stag import compute_anchors, entropy, stag_cosine

__all__ = ['GRADIENTS', 'SPACES', 'auroc', 'position_signals', 'residual', 'roc_curve']

SPACES = ('feature', 'logit', 'weight')
GRADIENTS = ('entropy', 'cross_entropy')


def auroc(scores: Tensor, correct: Tensor) -> float:
    """The area under the ROC curve of ``scores`` separating ``correct`` (True) from wrong
    positions: the Mann-Whitney statistic, ties counted half. NaN when one class is empty."""
    scores = scores.detach().flatten().double()
    correct = correct.detach().flatten().bool()
    n_pos, n_neg = int(correct.sum()), int((~correct).sum())
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    order = scores.argsort()
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=scores.dtype)
    # ties: every member of a run of equal scores gets the run's mean rank
    unique, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True,
                                                       return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks[order] = mean_rank[inverse]
    rank_sum = float(ranks[correct].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def roc_curve(scores: Tensor, correct: Tensor) -> tuple[Tensor, Tensor]:
    """``(false positive rate, true positive rate)`` at every threshold, from the highest."""
    scores = scores.detach().flatten().double()
    correct = correct.detach().flatten().double()
    order = scores.argsort(descending=True)
    tp = correct[order].cumsum(0)
    fp = (1 - correct[order]).cumsum(0)
    zero = torch.zeros(1, dtype=tp.dtype)
    return (torch.cat([zero, fp / fp[-1].clamp_min(1)]),
            torch.cat([zero, tp / tp[-1].clamp_min(1)]))


def residual(signal: Tensor, confidence: Tensor, fit: Tensor | None = None) -> Tensor:
    """``signal`` minus its least-squares line in ``confidence``, ``s - (a + b c)``, the line
    fitted on the positions ``fit`` (all when None)."""
    s, c = signal.detach().flatten().double(), confidence.detach().flatten().double()
    design = torch.stack([torch.ones_like(c), c], dim=1)
    rows = slice(None) if fit is None else fit.flatten().bool()
    coef = torch.linalg.lstsq(design[rows], s[rows, None]).solution[:, 0]
    return (s - design @ coef).view_as(signal)


def position_signals(logits: Tensor, weight: Tensor, bias: Tensor | None, features: Tensor,
                     ) -> dict[str, Tensor]:
    """Every signal of :mod:`this module <stag_study.signals>` but PLPD, per position.

    Args:
        logits (Tensor): (N, C, *) at the classifier's resolution.
        weight (Tensor): (C, D). bias (Tensor, optional): (C,).
        features (Tensor): (N, D, *) the classifier's inputs.

    Returns:
        dict[str, Tensor]: name -> (P,) values over the P = N * prod(*) positions, with
        ``'valid'`` the positions where every cosine is defined.
    """
    logits, features = logits.detach().double(), features.detach().double()
    weight = weight.detach().double()
    bias = None if bias is None else bias.detach().double()
    probs = logits.softmax(1)
    out = dict(neg_entropy=-entropy(logits, dim=1).flatten(),
               max_softmax=probs.max(1).values.flatten())
    valid = torch.ones_like(out['max_softmax'], dtype=torch.bool)
    for gradient in GRADIENTS:
        anchors = compute_anchors(weight, bias, gradient=gradient)
        for space in SPACES:
            cos, ok = stag_cosine(logits, weight, anchors, features, space=space,
                                  form='explicit' if space == 'feature' else 'gram',
                                  gradient=gradient)
            out[f'cos/{space}/{gradient}'] = cos.flatten()
            valid &= ok.flatten()
    for name in [k for k in out if k.startswith('cos/')]:
        out[f'resid/{name}'] = residual(out[name], out['max_softmax'], valid)
    out['valid'] = valid
    return out
