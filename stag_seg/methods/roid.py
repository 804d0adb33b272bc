"""ROID: universal test-time adaptation through weight ensembling, diversity weighting and prior
correction.

Paper: Marsden, Döbler and Yang, "Universal Test-time Adaptation through Weight Ensembling,
Diversity Weighting, and Prior Correction", WACV 2024 (https://arxiv.org/abs/2306.00650).
Reference: mariodoebler/test-time-adaptation, ``classification/methods/roid.py``.

What is adapted: the normalization layers' affine parameters, BatchNorm on test-batch
statistics (as Tent). Per step, from the logits ``l`` of the batch:

- weights (``use_weighting``, Sec. 3.2): the diversity ``d = 1 - cos(p_bar, p)`` against a
  moving average ``p_bar`` of the mean prediction and the certainty ``c = -H(p)``, each min-max
  normalised over the batch; samples with ``d`` below the batch mean are left out; the others
  weigh ``w = exp(d c / temperature)``; then ``p_bar <- 0.9 p_bar + 0.1 mean(p)`` over the whole
  batch;
- the soft likelihood ratio ``SLR(l)`` (clip 0.99, eps 1e-5), weighted, summed over the kept
  samples and divided by ``batch_size``;
- consistency (``use_consistency``): the kept samples' strong view (colour, reflect-padded
  affine, flip; no blur, no noise) through the model again (its own batch statistics), the
  symmetric cross entropy to their logits ``l`` (not detached), weighted, summed, over
  ``batch_size``;
- after the step, weight ensembling with the source, ``theta <- 0.99 theta + 0.01 theta_0``,
  for the trained parameters;
- the prediction (``use_prior_correction``, Sec. 3.3): with ``pbar`` the batch's mean
  prediction and ``s = max(1/B, 1/C) / max(pbar)``, the **logits** times
  ``(pbar + s) / (1 + s C)``, as the reference multiplies them (the argmax of that product is
  scored; it is not ``p * prior`` where logits are negative).

Where this differs from the reference, and why:

- ``batch_size`` (the divisor, the reference's ``TEST.BATCH_SIZE``) is the first batch's size
  when None, which is the test loader's batch size: a last, smaller batch is still divided by
  it, as in the reference;
- the moving average ``p_bar`` has the logits' dtype (the reference's default dtype);
- at batch size 1, or when every sample has the same diversity, the min-max normalisation is
  0/0: the reference then writes NaN into the model, while the step here drops the step as not
  finite (and counts it) and only ``p_bar`` moves;
- views are drawn from the method's generator (``seed``) in the reference's order;
- InstanceNorm affine parameters are trained too (the reference lists BatchNorm, LayerNorm and
  GroupNorm; the benchmark models have none). For classifiers only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import TTA_METHODS
from ..structures import StepContext, TapOutput
from .augment import apply_view, draw_reference_view, pixel_statistics, to_inputs, to_pixels
from .base import BaseTTAMethod, MethodLoss, at_positions
from .losses import soft_likelihood_ratio, softmax_entropy, symmetric_cross_entropy
from .params import collect_norm_params, use_batch_statistics
from .teachers import ema_update

__all__ = ['ROID', 'prior_corrected']


def prior_corrected(logits: Tensor) -> Tensor:
    """(N, C) ``logits`` times ROID's smoothed prior of the batch, ``(pbar + s) / (1 + s C)``
    with ``s = max(1/N, 1/C) / max(pbar)`` and ``pbar`` the mean softmax."""
    prior = logits.softmax(1).mean(0)
    smooth = max(1 / logits.size(0), 1 / logits.size(1)) / torch.max(prior)
    return logits * ((prior + smooth) / (1 + smooth * logits.size(1)))


def _min_max(x: Tensor) -> Tensor:
    return (x - x.min()) / (x.max() - x.min())


@TTA_METHODS.register_module()
class ROID(BaseTTAMethod):
    """Diversity- and certainty-weighted soft likelihood ratio with consistency, weight
    ensembling and prior correction.

    Args:
        momentum_src (float): Weight of the adapted parameters in the ensembling with the
            source ones. Defaults to 0.99.
        momentum_probs (float): Momentum of the mean prediction's moving average.
            Defaults to 0.9.
        temperature (float): Of the weights. Defaults to 1/3.
        use_weighting (bool): Diversity and certainty weights. Defaults to True.
        use_prior_correction (bool): Correct the prediction by the batch's prior.
            Defaults to True.
        use_consistency (bool): The consistency term on the strong view. Defaults to True.
        batch_size (int, optional): The divisor of the loss; None: the first batch's size.
            Defaults to None.
        seed (int, optional): Seed of the views; None takes torch's global seed (MMEngine's
            ``randomness.seed``). Defaults to None.
        **kwargs: ``optim_wrapper``, ``regularizers``, ``reset_every``.
    """

    adapts = ('affine parameters of BatchNorm, LayerNorm, GroupNorm and InstanceNorm layers '
              '(by type, subclasses included)')

    def __init__(self,
                 momentum_src: float = 0.99,
                 momentum_probs: float = 0.9,
                 temperature: float = 1 / 3,
                 use_weighting: bool = True,
                 use_prior_correction: bool = True,
                 use_consistency: bool = True,
                 batch_size: int | None = None,
                 seed: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        for key, value in (('momentum_src', momentum_src), ('momentum_probs', momentum_probs)):
            if not 0 <= value <= 1:
                raise ValueError(f'ROID.{key} must be in [0, 1], got {value}')
        if temperature <= 0:
            raise ValueError(f'ROID.temperature must be > 0, got {temperature}')
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f'ROID.batch_size must be None or an int >= 1, got {batch_size!r}')
        self.momentum_src, self.momentum_probs = momentum_src, momentum_probs
        self.temperature = temperature
        self.use_weighting = use_weighting
        self.use_prior_correction = use_prior_correction
        self.use_consistency = use_consistency
        self.batch_size = batch_size
        self.divisor = batch_size
        self.seed = seed
        self.generator = torch.Generator()
        self.class_probs: Tensor | None = None  # p_bar, uniform until the first step

    def __repr__(self) -> str:
        return (f'ROID(weighting={self.use_weighting}, prior_correction='
                f'{self.use_prior_correction}, consistency={self.use_consistency}, '
                f'regularizers={self.regularizers})')

    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        return use_batch_statistics(model)

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        return collect_norm_params(model)

    def setup(self, model: nn.Module) -> None:
        self._pixels = pixel_statistics(model)
        self.generator.manual_seed(torch.initial_seed() if self.seed is None else self.seed)

    def reset_state(self) -> None:
        self.class_probs = None

    def extra_state(self) -> dict:
        return dict(class_probs=self.class_probs, divisor=self.divisor,
                    generator=self.generator.get_state())

    def load_extra_state(self, state: dict) -> None:
        self.class_probs, self.divisor = state['class_probs'], state['divisor']
        self.generator.set_state(state['generator'])

    def strong_view(self, inputs: Tensor) -> Tensor:
        """ROID's view of preprocessed inputs (``cotta_augs=False``), one draw for the batch."""
        pixels = to_pixels(inputs, self._pixels)
        params = draw_reference_view(self.generator, tuple(pixels.shape), blur=False,
                                     noise=False, padding='reflect')
        return to_inputs(apply_view(pixels, params), self._pixels)

    def prediction(self, out: TapOutput, ctx: StepContext) -> Tensor | None:
        if out.logits.dim() != 2:
            raise ValueError('ROID is defined for classifiers (its weights, prior and '
                             f'divisor are per image), got logits {tuple(out.logits.shape)}')
        return prior_corrected(out.logits.detach()) if self.use_prior_correction else None

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        logits = out.logits
        if self.divisor is None:
            self.divisor = logits.size(0)
        if self.class_probs is None:
            self.class_probs = torch.full((logits.size(1), ), 1 / logits.size(1),
                                          dtype=logits.dtype, device=logits.device)
        keep, weights = None, None
        with torch.no_grad():
            probs = logits.softmax(1)
            if self.use_weighting:
                diversity = _min_max(1 - F.cosine_similarity(self.class_probs[None], probs,
                                                             dim=1))
                keep = ~(diversity < diversity.mean())
                certainty = _min_max(-softmax_entropy(logits))
                weights = torch.exp(diversity * certainty / self.temperature)
                weights[~keep] = 0.
            self.class_probs = (self.momentum_probs * self.class_probs
                                + (1 - self.momentum_probs) * probs.mean(0))
        slr = soft_likelihood_ratio(logits)
        if keep is not None:
            slr = slr * weights
        kept = keep if keep is not None else torch.ones_like(slr, dtype=torch.bool)
        consistency = None
        if self.use_consistency:
            aug = ctx.forward(self.strong_view(ctx.inputs[kept]))
            consistency = symmetric_cross_entropy(aug.logits, logits[kept])
            if weights is not None:
                consistency = consistency * weights[kept]

        def parts(multiplier: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
            # the per-image terms' sums, times a regularizer's multiplier when it reweights
            m = None if multiplier is None else at_positions(multiplier, slr)
            terms = slr if m is None else slr * m
            main = (terms if keep is None else terms[keep]).sum() / self.divisor
            if consistency is None:
                return main, None
            return main, (consistency if m is None else consistency * m[kept]).sum() / self.divisor

        def total(multiplier: Tensor | None = None) -> Tensor:
            main, cons = parts(multiplier)
            return main if cons is None else main + cons

        main, cons = parts()
        stats = dict(roid_slr=float(main.detach()))
        if cons is not None:
            stats['roid_consistency'] = float(cons.detach())
        if keep is not None:
            stats['roid_kept'] = float(keep.float().mean())
        return MethodLoss(main if cons is None else main + cons, mask=keep, weights=weights,
                          stats=stats,
                          reweight=total)

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        """Weight ensembling with the source, for the trained parameters."""
        trained = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        ema_update([p for _, p in trained], [self._source_state[n] for n, _ in trained],
                   self.momentum_src)
