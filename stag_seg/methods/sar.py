"""SAR: sharpness-aware and reliable entropy minimisation, with model recovery.

Paper: Niu et al., "Towards Stable Test-Time Adaptation in Dynamic Wild World", ICLR 2023
(https://arxiv.org/abs/2302.12400). Reference: https://github.com/mr-eggplant/SAR.

What is adapted: normalization-layer affine parameters, all of them by default, like Tent. The
reference's classification code leaves the top of the network alone (ResNet ``layer4``, ViT
blocks 9-11 and the final norm); ``frozen_modules`` names such modules (by module-name prefix)
and the ImageNet-C configs use it. Per step (Eq. 2-5):

1. reliable samples: entropy ``H < e0`` (``e0 = 0.4 ln C``); loss ``mean(H)`` over them;
2. SAM: gradient at ``w``, ascend to ``w + rho g/|g|``, forward the same batch again, keep the
   samples still below ``e0`` among the first ones, loss ``mean(H)`` there, gradient at the
   perturbed weights, restore ``w``, step (:func:`~stag_seg.methods.step.sam_update`);
3. recovery: a moving average ``ema <- 0.9 ema + 0.1 L2`` of the second loss; when it falls below
   ``reset_threshold`` (0.2) the model returns to the source. As in the reference, the base
   optimizer keeps its momentum through the reset (the reference reloads the SAM wrapper's
   state, which does not hold the base SGD's buffers), and the average itself is kept, so
   resets repeat until it climbs back over the threshold. With several processes the average
   is taken over the ranks' second losses, so every rank resets at the same step.

For segmentation reliability is per pixel. STAG rides on both SAM losses with their masks.
"""
from __future__ import annotations

import math

from torch import Tensor

from ..dist import rank_mean
from ..registry import TTA_METHODS
from ..stag.entropy import entropy
from ..structures import StepContext, TapOutput
from .base import MethodLoss, at_positions, valid_mean
from .tent import Tent


__all__ = ['SAR']


@TTA_METHODS.register_module()
class SAR(Tent):
    """Reliable entropy minimisation with a sharpness-aware update and model recovery.

    Args:
        e0 (float, optional): Entropy margin; ``0.4 ln C`` when None. Defaults to None.
        rho (float): SAM neighbourhood size. Defaults to 0.05.
        reset_threshold (float): Reset to the source when the moving average of the second
            loss falls below it. Defaults to 0.2.
        ema_momentum (float): Weight of the old value in that average. Defaults to 0.9.
        **kwargs: ``frozen_modules``, ``batch_stats`` (see :class:`~stag_seg.methods.Tent`),
            ``optim_wrapper`` (the base optimizer, SGD with momentum 0.9 in the paper),
            ``regularizers``.
    """

    uses_sam = True

    def __init__(self,
                 e0: float | None = None,
                 rho: float = 0.05,
                 reset_threshold: float = 0.2,
                 ema_momentum: float = 0.9,
                 **kwargs) -> None:
        super().__init__(loss='entropy', **kwargs)
        if rho <= 0:
            raise ValueError(f'SAR.rho must be > 0, got {rho}')
        self.e0 = e0
        self.rho = rho
        self.reset_threshold = reset_threshold
        self.ema_momentum = ema_momentum
        self.ema: float | None = None
        self.num_resets = 0
        self.last_second: MethodLoss | None = None

    def __repr__(self) -> str:
        frozen = f', frozen_modules={list(self.frozen_modules)}' if self.frozen_modules else ''
        return (f'SAR(e0={self.e0}, rho={self.rho}, reset_threshold={self.reset_threshold}'
                f'{frozen}, regularizers={self.regularizers})')

    def margin(self, num_classes: int) -> float:
        return 0.4 * math.log(num_classes) if self.e0 is None else self.e0

    def reset_state(self) -> None:
        self.ema = None
        self.last_second = None

    def extra_state(self) -> dict:
        return dict(ema=self.ema, num_resets=self.num_resets)

    def load_extra_state(self, state: dict) -> None:
        self.ema, self.num_resets = state['ema'], state['num_resets']

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        ent = entropy(out.logits, dim=1)
        mask = ent.detach() < self.margin(out.logits.size(1))
        if out.valid is not None:
            mask &= out.valid
        loss = valid_mean(ent, mask)
        return MethodLoss(loss, mask=mask, stats=dict(sar_entropy=float(ent.detach().mean()),
                                                      sar_selected=float(mask.float().mean())),
                          reweight=lambda m: valid_mean(ent * at_positions(m, ent), mask))

    def second_loss(self, out: TapOutput, first: MethodLoss, ctx: StepContext) -> MethodLoss:
        ent = entropy(out.logits, dim=1)
        mask = first.mask & (ent.detach() < self.margin(out.logits.size(1)))
        loss = valid_mean(ent, mask)
        # kept for after_step: the moving average and the reset follow the second loss
        self.last_second = MethodLoss(
            loss, mask=mask, stats=dict(sar_selected=float(mask.float().mean())),
            reweight=lambda m: self._reweighted_second(ent, m, mask))
        return self.last_second

    def _reweighted_second(self, ent: Tensor, multiplier: Tensor, mask: Tensor) -> Tensor:
        """The second loss with its terms reweighted; the moving average and the resets
        follow it, as they follow the loss that is minimised."""
        loss = valid_mean(ent * at_positions(multiplier, ent), mask)
        self.last_second.loss = loss
        return loss

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        second = self.last_second
        defined = second is not None and bool(second.mask.any())
        # one average for all ranks, so that they reset together and stay identical
        value, defined = rank_mean(float(second.loss.detach()) if defined else 0.0, defined)
        if not defined:
            return  # the reference updates its average only with a defined second loss
        self.ema = value if self.ema is None else \
            self.ema_momentum * self.ema + (1 - self.ema_momentum) * value
        ctx.stats['sar_ema'] = self.ema
        reset = self.ema < self.reset_threshold
        if reset:
            self.num_resets += 1
            ema = self.ema
            self.reset(optimizer=False)  # weights back to the source; momentum is kept
            # as the reference: the low average is kept, so the reset repeats until the loss
            # of the source model lifts it back over the threshold
            self.ema = ema
        ctx.stats['sar_reset'] = float(reset)  # its mean per domain is the reset rate

