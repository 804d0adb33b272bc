"""EATA: efficient anti-forgetting test-time adaptation.

Paper: Niu et al., "Efficient Test-Time Model Adaptation without Forgetting", ICML 2022
(https://arxiv.org/abs/2204.02610). Reference: https://github.com/mr-eggplant/EATA.

What is adapted: the normalization layers' affine parameters, as in Tent. Per step:

- reliable samples: entropy ``H < e0`` with ``e0 = 0.4 ln C`` (Eq. 3);
- non-redundant samples: ``|cos(p_mean, p_bar)| < d_margin`` against the moving average
  ``p_bar`` of the mean predicted distribution (Eq. 5; ``p_bar <- 0.9 p_bar + 0.1 mean(p)``
  over the kept samples);
- weights ``exp(e0 - H)`` (Eq. 6); loss ``mean(w * H)`` over the kept samples (Eq. 8);
- anti-forgetting: ``+ fisher_alpha * sum F (theta - theta_0)^2`` with the diagonal Fisher
  estimated on source images (Eq. 9), when ``fisher_data`` is given.

For segmentation (this implementation's reading): reliability and weights are per pixel; the
redundancy filter is per image, on the mean distribution of the image's reliable pixels; the
Fisher comes from the per-pixel cross entropy against the model's own predictions. As in the
reference code, no optimizer step is taken when no sample (pixel) is kept.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from ..registry import TTA_METHODS
from ..stag.entropy import entropy
from ..structures import StepContext, TapOutput
from .base import MethodLoss, at_positions, valid_mean
from .source_data import build_source_loader
from .tent import Tent


__all__ = ['EATA']


@TTA_METHODS.register_module()
class EATA(Tent):
    """Entropy minimisation on reliable, non-redundant samples, with a Fisher penalty.

    Args:
        e0 (float, optional): Entropy margin; ``0.4 ln C`` when None. Defaults to None.
        d_margin (float): Redundancy threshold on ``|cos|``. Defaults to 0.05 (the paper's
            ImageNet value; per-image class distributions of street scenes are far more alike,
            so segmentation configs set their own).
        fisher_alpha (float): Weight of the Fisher penalty. Defaults to 2000.
        fisher_data (dict, optional): ``dict(dataloader=dict(...), num_images=500)``: source
            images for the Fisher, built with MMEngine's ``Runner.build_dataloader``. None
            turns the penalty off. Defaults to None.
        **kwargs: ``optim_wrapper``, ``regularizers``.
    """

    def __init__(self,
                 e0: float | None = None,
                 d_margin: float = 0.05,
                 fisher_alpha: float = 2000.0,
                 fisher_data: dict | None = None,
                 **kwargs) -> None:
        super().__init__(loss='entropy', **kwargs)
        if d_margin <= 0:
            raise ValueError(f'EATA.d_margin must be > 0, got {d_margin}')
        if fisher_data is not None and 'dataloader' not in fisher_data:
            raise KeyError("EATA.fisher_data needs a 'dataloader' config (and optionally "
                           "'num_images')")
        self.e0 = e0
        self.d_margin = d_margin
        self.fisher_alpha = fisher_alpha
        self.fisher_data = fisher_data
        self.fisher: list[tuple[Tensor, Tensor]] = []
        self.moving_probs: Tensor | None = None

    def __repr__(self) -> str:
        return (f'EATA(e0={self.e0}, d_margin={self.d_margin}, fisher='
                f'{"on" if self.fisher_data else "off"}, regularizers={self.regularizers})')

    def margin(self, num_classes: int) -> float:
        return 0.4 * math.log(num_classes) if self.e0 is None else self.e0

    def setup(self, model: nn.Module) -> None:
        if self.fisher_data is not None:
            self.fisher = estimate_fisher(model, self.optim_wrapper, self.logits_fn,
                                          self.fisher_data)

    def reset_state(self) -> None:
        self.moving_probs = None

    def extra_state(self) -> dict:
        return dict(moving_probs=self.moving_probs, fisher=[list(f) for f in self.fisher])

    def load_extra_state(self, state: dict) -> None:
        device = next(self.model.parameters()).device
        moving = state['moving_probs']
        self.moving_probs = moving.to(device) if moving is not None else None
        self.fisher = [tuple(t.to(device) for t in f) for f in state['fisher']]

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        logits = out.logits
        e0 = self.margin(logits.size(1))
        ent = entropy(logits, dim=1)
        reliable = ent.detach() < e0
        if out.valid is not None:
            reliable &= out.valid
        keep = self._non_redundant(logits.detach().softmax(1), reliable)
        mask = reliable & keep.view(-1, *([1] * (reliable.dim() - 1)))
        weights = torch.exp(e0 - ent.detach())
        loss = valid_mean(ent * weights, mask)
        penalty = None
        stats = dict(eata_entropy=float(ent.detach().mean()),
                     eata_reliable=float(reliable.float().mean()),
                     eata_selected=float(mask.float().mean()))
        if self.fisher:
            penalty = sum((f * (p - p0).pow(2)).sum()
                          for (f, p0), p in zip(self.fisher, self._params()))
            loss = loss + self.fisher_alpha * penalty
            stats['eata_fisher'] = float(penalty.detach())

        def reweight(m: Tensor) -> Tensor:
            terms = valid_mean(ent * weights * at_positions(m, ent), mask)
            return terms if penalty is None else terms + self.fisher_alpha * penalty

        return MethodLoss(loss, mask=mask, weights=weights, stats=stats,
                          skip=not bool(mask.any()), reweight=reweight)

    def _non_redundant(self, probs: Tensor, reliable: Tensor) -> Tensor:
        """(N,) samples whose mean reliable distribution differs from the moving average."""
        flat_p = probs.flatten(2) if probs.dim() > 2 else probs.unsqueeze(2)
        flat_r = reliable.flatten(1).unsqueeze(1).float() if reliable.dim() > 1 \
            else reliable.view(-1, 1, 1).float()
        count = flat_r.sum(2)
        mean = (flat_p * flat_r).sum(2) / count.clamp_min(1)  # (N, C)
        has = count.squeeze(1) > 0
        if self.moving_probs is None:
            keep = has
        else:
            cos = F.cosine_similarity(mean, self.moving_probs.unsqueeze(0), dim=1)
            keep = has & (cos.abs() < self.d_margin)
        if keep.any():
            new = mean[keep].mean(0)
            self.moving_probs = new if self.moving_probs is None else \
                0.9 * self.moving_probs + 0.1 * new
        return keep

    def _params(self) -> list[nn.Parameter]:
        return [p for group in self.optim_wrapper.param_groups for p in group['params']]


def estimate_fisher(model: nn.Module, optim_wrapper, logits_fn, cfg: dict
                    ) -> list[tuple[Tensor, Tensor]]:
    """Diagonal Fisher of the adapted parameters on source images, with the source values.

    The gradient of the cross entropy against the model's own predictions, squared and averaged
    over the images (EATA's estimate).
    """
    limit = int(cfg.get('num_images', 500))
    if limit < 1:
        raise ValueError(f'EATA.fisher_data.num_images must be >= 1, got {limit}')
    loader = build_source_loader(cfg, 'EATA.fisher_data')
    params = [p for group in optim_wrapper.param_groups for p in group['params']]
    squares = [torch.zeros_like(p) for p in params]
    seen, batches = 0, 0
    with torch.enable_grad():
        for batch in loader:
            if seen >= limit:
                break
            data = model.data_preprocessor(batch, False)
            logits = logits_fn(model, data['inputs'])
            loss = F.cross_entropy(logits, logits.detach().argmax(1))
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for sq, g in zip(squares, grads):
                if g is not None:
                    sq += g.detach().pow(2)
            seen += data['inputs'].size(0)
            batches += 1
    if seen == 0:
        raise ValueError('EATA.fisher_data yielded no images: check its dataset '
                         f'({cfg["dataloader"].get("dataset")})')
    print_log(f'EATA: Fisher estimated on {seen} source images', logger='current')
    return [(sq / batches, p.detach().clone()) for sq, p in zip(squares, params)]
