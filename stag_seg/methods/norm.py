"""Norm: normalise with the statistics of each test batch (test-time BN adaptation).

Papers: Schneider et al., "Improving robustness against common corruptions by covariate shift
adaptation", NeurIPS 2020; Nado et al., "Evaluating prediction-time batch normalization", 2020.
Called "BN adapt" in the CoTTA ACDC table (docs/design.md, "Protocols").

Choice: the statistics come from the current batch alone (no blending with the source running
statistics, the ``N = 0`` prior of Schneider et al.), as in the TENT reference's ``norm`` baseline.
No parameter changes; LayerNorm and GroupNorm compute per-sample statistics anyway, so on a
model without BatchNorm this method equals Source.
"""
from __future__ import annotations

from torch import nn

from ..registry import TTA_METHODS
from .base import BaseTTAMethod
from .params import use_batch_statistics

__all__ = ['Norm']


@TTA_METHODS.register_module()
class Norm(BaseTTAMethod):
    """BatchNorm layers use test-batch statistics; nothing is trained."""

    needs_grad = False

    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        return use_batch_statistics(model)
