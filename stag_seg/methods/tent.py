"""Tent: fully test-time adaptation by entropy minimisation.

Paper: Wang et al., "Tent: Fully Test-time Adaptation by Entropy Minimization", ICLR 2021
(https://arxiv.org/abs/2006.10726). Reference: https://github.com/DequanWang/tent.

What is adapted: the affine parameters of every normalization layer (BatchNorm, LayerNorm,
GroupNorm, InstanceNorm; chosen by type), except those inside ``frozen_modules``. With
``batch_stats=True`` (the paper) BatchNorm normalises with test-batch statistics; with
``False`` it keeps its running statistics and the whole model stays in eval mode, as in the
"TENT" of the public CoTTA segmentation code (its round-1 result equals the source's). Other
choices of parameterization are possible; this is the paper's. The subclasses (EATA, SAR,
DeYO) share these options.

Two objectives:

- ``loss='entropy'`` (default): mean Shannon entropy of the predictions (the paper, Eq. 2).
- ``loss='pseudo_label'``: cross entropy against the model's own hard predictions. This is what
  the "TENT" of the public CoTTA segmentation code optimises, and what its published ACDC table
  reports (``docs/design.md``, "Protocols"); use it to reproduce that table.

For segmentation, ``resolution`` says where the loss lives:

- ``'decoder'`` (default): averaged over the valid pixels at the decode head's resolution;
- ``'original'``: as the CoTTA segmentation code does it, the decode head's logits are
  upsampled (bilinear) to the size the predictions are scored at (1080x1920 on ACDC) and the
  loss is averaged over all of those pixels; the pseudo-label is the argmax of the model's
  full-resolution prediction of this step (the slide prediction that is scored), not of the
  upsampled decoder logits.
"""
from __future__ import annotations


from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import TTA_METHODS
from ..stag.entropy import entropy
from ..structures import StepContext, TapOutput
from .base import BaseTTAMethod, MethodLoss, at_positions, valid_mean
from .params import collect_norm_params, drop_frozen, use_batch_statistics


__all__ = ['Tent']

LOSSES = ('entropy', 'pseudo_label')
RESOLUTIONS = ('decoder', 'original')


@TTA_METHODS.register_module()
class Tent(BaseTTAMethod):
    """Entropy minimisation on normalization-layer affine parameters.

    Args:
        loss (str): ``'entropy'`` or ``'pseudo_label'`` (see the module docstring).
            Defaults to ``'entropy'``.
        batch_stats (bool): BatchNorm normalises with test-batch statistics (train mode);
            False keeps the running statistics (eval mode). Defaults to True.
        frozen_modules (Sequence[str]): Names of modules (``'backbone.layer4'``) whose
            normalization layers are not adapted; a name covers the modules inside it, as the
            SAR and DeYO code leave the top of a network alone. Defaults to ().
        resolution (str): ``'decoder'`` or ``'original'``, where a segmentor's loss is taken
            (see the module docstring); classifiers ignore it. Defaults to ``'decoder'``.
        optim_wrapper (dict): Optim wrapper for the adapted parameters.
        regularizers (Sequence[dict]): E.g. ``[dict(type='STAG')]``. Defaults to ().
    """

    adapts = ('affine parameters of BatchNorm, LayerNorm, GroupNorm and InstanceNorm layers '
              '(by type, subclasses included)')

    def __init__(self,
                 loss: str = 'entropy',
                 batch_stats: bool = True,
                 frozen_modules: Sequence[str] = (),
                 resolution: str = 'decoder',
                 **kwargs) -> None:
        name = type(self).__name__
        if loss not in LOSSES:
            raise ValueError(f"tta_method.loss must be 'entropy' or 'pseudo_label', got {loss!r}")
        if resolution not in RESOLUTIONS:
            raise ValueError(f"{name}.resolution must be 'decoder' or 'original', got "
                             f'{resolution!r}')
        if resolution != 'decoder' and type(self).loss is not Tent.loss:
            raise ValueError(f"{name} takes its loss at the decode head's resolution only; "
                             f"resolution={resolution!r} is an option of Tent")
        if isinstance(frozen_modules, str):
            raise TypeError(f'{name}.frozen_modules must be a list of module names, got the '
                            f'string {frozen_modules!r}')
        super().__init__(**kwargs)
        self.loss_type = loss
        self.batch_stats = batch_stats
        self.frozen_modules = tuple(frozen_modules)
        self.resolution = resolution

    def __repr__(self) -> str:
        extra = f', loss={self.loss_type!r}'
        if not self.batch_stats:
            extra += ', batch_stats=False'
        if self.resolution != 'decoder':
            extra += f', resolution={self.resolution!r}'
        return super().__repr__()[:-1] + extra + ')'

    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        return use_batch_statistics(model) if self.batch_stats else []

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        params, names = collect_norm_params(model)
        return drop_frozen(model, params, names, self.frozen_modules, self.name)

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        if self.resolution == 'original' and ctx.metas is not None:
            return self._loss_at_original(out, ctx)
        if self.loss_type == 'entropy':
            per_pos = entropy(out.logits, dim=1)
        else:
            per_pos = F.cross_entropy(out.logits, out.logits.detach().argmax(1), reduction='none')
        loss = valid_mean(per_pos, out.valid)
        return MethodLoss(loss, mask=out.valid,
                          stats={f'tent_{self.loss_type}': float(loss.detach())},
                          reweight=lambda m: valid_mean(per_pos * at_positions(m, per_pos),
                                                        out.valid))

    def _loss_at_original(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        """The loss over every pixel at the scored size (the CoTTA segmentation code's).

        The reference trains on a whole-image forward. Where the prediction's slide inference
        ran the classifier once (an image no larger than a crop, as on ACDC) that forward is
        the prediction's own; with several crops a whole-image forward is added.
        """
        whole = out if out.logits.dim() == 4 else ctx.forward()
        logits = ctx.at_original_size(whole.logits)
        if self.loss_type == 'entropy':
            loss = entropy(logits, dim=1).mean()
        else:
            label = ctx.at_original_size(ctx.output.detach()).argmax(1)
            loss = F.cross_entropy(logits, label)

        def reweight(multiplier: Tensor) -> Tensor:
            # each pixel's term at the scored size, times its decoder position's multiplier
            if self.loss_type == 'entropy':
                per_pos = entropy(logits, dim=1)
            else:
                per_pos = F.cross_entropy(logits, label, reduction='none')
            return (per_pos * at_positions(multiplier, per_pos)).mean()

        # the regularizers stay at the decode head's resolution, on its valid pixels (those of
        # the whole-image forward when the prediction ran several crops)
        return MethodLoss(loss, mask=whole.valid, out=None if whole is out else whole,
                          stats={f'tent_{self.loss_type}': float(loss.detach())},
                          reweight=reweight)
