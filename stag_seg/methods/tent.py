"""Tent: fully test-time adaptation by entropy minimisation.

Paper: Wang et al., "Tent: Fully Test-time Adaptation by Entropy Minimization", ICLR 2021
(https://arxiv.org/abs/2006.10726). Reference: https://github.com/DequanWang/tent.

What is adapted: the affine parameters of every normalization layer (BatchNorm, LayerNorm,
GroupNorm, InstanceNorm; chosen by type); BatchNorm normalises with test-batch statistics.
Other choices of parameterization are possible; this is the paper's.

Two objectives:

- ``loss='entropy'`` (default): mean Shannon entropy of the predictions (the paper, Eq. 2).
- ``loss='pseudo_label'``: cross entropy against the model's own hard predictions. This is what
  the "TENT" of the public CoTTA segmentation code optimises, and what its published ACDC table
  reports (DESIGN.md section 4); use it to reproduce that table.

For segmentation both are averaged over the valid pixels at the decode head's resolution.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import nn

from ..registry import TTA_METHODS
from ..stag.entropy import entropy
from .base import BaseTTAMethod, MethodLoss, valid_mean
from .params import collect_norm_params, use_batch_statistics

if TYPE_CHECKING:  # the models package imports the methods
    from ..engine.adapt import StepContext
    from ..models.tap import TapOutput

__all__ = ['Tent']

LOSSES = ('entropy', 'pseudo_label')


@TTA_METHODS.register_module()
class Tent(BaseTTAMethod):
    """Entropy minimisation on normalization-layer affine parameters.

    Args:
        loss (str): ``'entropy'`` or ``'pseudo_label'`` (see the module docstring).
            Defaults to ``'entropy'``.
        optim_wrapper (dict): Optim wrapper for the adapted parameters.
        regularizers (Sequence[dict]): E.g. ``[dict(type='STAG')]``. Defaults to ().
    """

    def __init__(self, loss: str = 'entropy', **kwargs) -> None:
        if loss not in LOSSES:
            raise ValueError(f"tta_method.loss must be 'entropy' or 'pseudo_label', got {loss!r}")
        super().__init__(**kwargs)
        self.loss_type = loss

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', loss={self.loss_type!r})'

    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        return use_batch_statistics(model)

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        return collect_norm_params(model)

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        if self.loss_type == 'entropy':
            per_pos = entropy(out.logits, dim=1)
        else:
            per_pos = F.cross_entropy(out.logits, out.logits.detach().argmax(1), reduction='none')
        loss = valid_mean(per_pos, out.valid)
        return MethodLoss(loss, mask=out.valid,
                          stats={f'tent_{self.loss_type}': float(loss.detach())})
