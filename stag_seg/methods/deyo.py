"""DeYO: destroy your object, then trust the predictions that depend on its shape.

Paper: Lee et al., "Entropy is not Enough for Test-Time Adaptation: From the Perspective of
Disentangled Factors", ICLR 2024 (https://arxiv.org/abs/2403.07366).
Reference: https://github.com/Jhyun17/DeYO.

What is adapted: normalization-layer affine parameters, as in Tent. Per step:

- an augmented view that destroys shape but keeps local texture: the image cut into a
  ``patch_len x patch_len`` grid whose patches are shuffled (``aug='patch'``), or its pixels
  shuffled (``'pixel'``), forwarded without gradients;
- PLPD (pseudo-label probability difference) ``p_y(x) - p_y(x')`` for the prediction ``y`` on
  ``x`` (Eq. 6);
- selection: entropy ``H < margin`` (``0.5 ln C``) and ``PLPD > plpd_threshold`` (0.2);
- weights ``reweight_ent * exp(e0 - H) + reweight_plpd * exp(PLPD)`` with ``e0 = 0.4 ln C``;
  loss ``mean(w * H)`` over the selected samples. No step when nothing is selected.

For classification, as in the reference, only the samples that pass the entropy filter are
shuffled and forwarded (so BatchNorm normalises the view with their statistics), each with its
own permutation of the patches (or pixels).

For segmentation (this implementation's reading) PLPD is per pixel. The patch grid is aligned
with the decode head's resolution (each patch covers whole logit cells), and the augmented
logits are un-shuffled back to the original layout, so each pixel's probability is compared
with that of the same image content after its surroundings were destroyed. The shuffle comes
from a generator seeded by ``seed``, the same on every rank.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..registry import TTA_METHODS
from ..stag.entropy import entropy
from ..structures import StepContext, TapOutput
from .base import MethodLoss, at_positions, valid_mean
from .tent import Tent


__all__ = ['DeYO', 'patch_shuffle', 'shuffle_patches_per_sample', 'unshuffle_patches']

AUGS = ('patch', 'pixel')


@TTA_METHODS.register_module()
class DeYO(Tent):
    """Entropy and PLPD selection with shape-destroying augmentation.

    Args:
        aug (str): ``'patch'`` or ``'pixel'`` shuffle. Defaults to ``'patch'``.
        patch_len (int): Patches per side. Defaults to 4.
        margin (float, optional): Entropy selection threshold; ``0.5 ln C`` when None.
        e0 (float, optional): Entropy weighting reference; ``0.4 ln C`` when None.
        plpd_threshold (float): PLPD selection threshold. Defaults to 0.2.
        reweight_ent (float): Weight of the entropy term of the sample weight. Defaults to 1.
        reweight_plpd (float): Weight of the PLPD term. Defaults to 1.
        seed (int): Seed of the shuffles. Defaults to 0.
        **kwargs: ``optim_wrapper``, ``regularizers``.
    """

    def __init__(self,
                 aug: str = 'patch',
                 patch_len: int = 4,
                 margin: float | None = None,
                 e0: float | None = None,
                 plpd_threshold: float = 0.2,
                 reweight_ent: float = 1.0,
                 reweight_plpd: float = 1.0,
                 seed: int = 0,
                 **kwargs) -> None:
        super().__init__(loss='entropy', **kwargs)
        if aug not in AUGS:
            raise ValueError(f'DeYO.aug must be one of {AUGS}, got {aug!r}')
        if patch_len < 2:
            raise ValueError(f'DeYO.patch_len must be >= 2, got {patch_len}')
        self.aug = aug
        self.patch_len = patch_len
        self.margin = margin
        self.e0 = e0
        self.plpd_threshold = plpd_threshold
        self.reweight_ent = reweight_ent
        self.reweight_plpd = reweight_plpd
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __repr__(self) -> str:
        return (f'DeYO(aug={self.aug!r}, patch_len={self.patch_len}, plpd_threshold='
                f'{self.plpd_threshold}, regularizers={self.regularizers})')

    def reset_state(self) -> None:
        self.generator.manual_seed(self.seed)

    def extra_state(self) -> dict:
        return dict(generator=self.generator.get_state())

    def load_extra_state(self, state: dict) -> None:
        self.generator.set_state(state['generator'])

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        logits = out.logits
        num_classes = logits.size(1)
        margin = 0.5 * math.log(num_classes) if self.margin is None else self.margin
        e0 = 0.4 * math.log(num_classes) if self.e0 is None else self.e0
        ent = entropy(logits, dim=1)
        candidates = ent.detach() < margin
        if out.valid is not None:
            candidates &= out.valid
        with torch.no_grad():
            plpd = self.plpd(logits.detach(), ctx, candidates)
        selected = candidates & (plpd > self.plpd_threshold)
        weights = (self.reweight_ent * torch.exp(e0 - ent.detach())
                   + self.reweight_plpd * torch.exp(plpd))
        loss = valid_mean(ent * weights, selected)
        stats = dict(deyo_entropy=float(ent.detach().mean()), deyo_plpd=float(plpd.mean()),
                     deyo_selected=float(selected.float().mean()))
        return MethodLoss(loss, mask=selected, weights=weights, stats=stats,
                          skip=not bool(selected.any()),
                          reweight=lambda m: valid_mean(ent * weights * at_positions(m, ent),
                                                        selected))

    def plpd(self, logits: Tensor, ctx: StepContext, candidates: Tensor | None = None
             ) -> Tensor:
        """``p_y(x) - p_y(x')`` per sample (N,) or per pixel (N, h, w).

        For classifiers only the ``candidates`` (N,) (the entropy filter's samples; all when
        None) are shuffled and forwarded; the others get -1. Pixels outside the largest
        patch-aligned region of a dense map have no shuffled counterpart; their PLPD is -1 too,
        so they are never selected.
        """
        probs = logits.softmax(1)
        pred = probs.argmax(1, keepdim=True)
        if logits.dim() == 2:
            plpd = torch.full_like(logits[:, 0], -1.0)
            keep = (torch.ones_like(plpd, dtype=torch.bool) if candidates is None
                    else candidates.to(torch.bool))
            if not bool(keep.any()):
                return plpd  # nothing passed the entropy filter: no forward of the view
            x = ctx.inputs[keep]
            x_aug = (shuffle_patches_per_sample(x, self.patch_len, self.generator)
                     if self.aug == 'patch' else _shuffle_pixels_per_sample(x, self.generator))
            aug_probs = ctx.logits_fn(ctx.model, x_aug).softmax(1)
            pred = pred[keep]
            plpd[keep] = (probs[keep].gather(1, pred) - aug_probs.gather(1, pred)).squeeze(1)
            return plpd
        aug_probs = self._dense_aug_probs(logits.shape[2:], ctx)
        plpd = torch.full_like(logits[:, 0], -1.0)
        hh, ww = aug_probs.shape[2:]
        plpd[:, :hh, :ww] = (probs[:, :, :hh, :ww].gather(1, pred[:, :, :hh, :ww])
                             - aug_probs.gather(1, pred[:, :, :hh, :ww])).squeeze(1)
        return plpd

    def _dense_aug_probs(self, cells: tuple, ctx: StepContext) -> Tensor:
        """Probabilities of the shuffled view, moved back to where their content came from."""
        (h, w), (height, width) = cells, ctx.inputs.shape[2:]
        if height % h or width % w:
            raise ValueError(f'DeYO: input {height}x{width} is not a whole multiple of the logit '
                             f'map {h}x{w}; the shuffle must move whole logit cells')
        sh, sw = height // h, width // w
        if self.aug == 'pixel':
            x_aug, perm = _shuffle_cells(ctx.inputs, (h, w), self.generator)
            return _unshuffle_pixels(ctx.logits_fn(ctx.model, x_aug), perm).softmax(1)
        hh, ww = (h // self.patch_len) * self.patch_len, (w // self.patch_len) * self.patch_len
        if not hh or not ww:
            raise ValueError(f'DeYO: a {h}x{w} logit map is smaller than patch_len='
                             f'{self.patch_len}')
        x_aug, perm = patch_shuffle(ctx.inputs[:, :, :hh * sh, :ww * sw], self.patch_len,
                                    self.generator)
        aug_logits = ctx.logits_fn(ctx.model, x_aug)
        if aug_logits.shape[2:] != (hh, ww):
            raise ValueError(f'DeYO: the shuffled view gave a {tuple(aug_logits.shape[2:])} logit'
                             f' map, expected {(hh, ww)}')
        return unshuffle_patches(aug_logits, perm, self.patch_len).softmax(1)


def patch_shuffle(x: Tensor, patch_len: int, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    """Cut (N, C, H, W) into ``patch_len x patch_len`` patches and shuffle them (one
    permutation for the batch). H and W are cropped to multiples of ``patch_len``.

    Returns:
        tuple[Tensor, Tensor]: The shuffled images and ``perm``: output patch ``i`` is input
        patch ``perm[i]`` (patches in row-major order).
    """
    n, c, h, w = x.shape
    ph, pw = h // patch_len, w // patch_len
    x = x[:, :, :ph * patch_len, :pw * patch_len]
    patches = x.reshape(n, c, patch_len, ph, patch_len, pw).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(n, patch_len * patch_len, c, ph, pw)
    perm = torch.randperm(patch_len * patch_len, generator=generator).to(x.device)
    shuffled = patches[:, perm].reshape(n, patch_len, patch_len, c, ph, pw)
    return shuffled.permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * patch_len, pw * patch_len), perm


def shuffle_patches_per_sample(x: Tensor, patch_len: int, generator: torch.Generator) -> Tensor:
    """Cut (N, C, H, W) into ``patch_len x patch_len`` patches and shuffle them with a
    permutation of its own for each image (DeYO's classification view). H and W are cropped
    to multiples of ``patch_len``."""
    n, c, h, w = x.shape
    ph, pw = h // patch_len, w // patch_len
    x = x[:, :, :ph * patch_len, :pw * patch_len]
    patches = x.reshape(n, c, patch_len, ph, patch_len, pw).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(n, patch_len * patch_len, c, ph, pw)
    perm = torch.rand(n, patch_len * patch_len, generator=generator).argsort(1).to(x.device)
    shuffled = patches[torch.arange(n, device=x.device)[:, None], perm]
    shuffled = shuffled.reshape(n, patch_len, patch_len, c, ph, pw)
    return shuffled.permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * patch_len, pw * patch_len)


def unshuffle_patches(y: Tensor, perm: Tensor, patch_len: int) -> Tensor:
    """Invert :func:`patch_shuffle` on a map of the shuffled image (e.g. its logits)."""
    n, c, h, w = y.shape
    ph, pw = h // patch_len, w // patch_len
    patches = y.reshape(n, c, patch_len, ph, patch_len, pw).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(n, patch_len * patch_len, c, ph, pw)
    restored = torch.empty_like(patches)
    restored[:, perm] = patches
    restored = restored.reshape(n, patch_len, patch_len, c, ph, pw)
    return restored.permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def _shuffle_cells(x: Tensor, cells: tuple, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Shuffle blocks of ``x`` that each map to one logit cell (pixel shuffle for dense maps)."""
    h, w = cells
    if x.shape[2] % h or x.shape[3] % w:
        raise ValueError(f'DeYO pixel shuffle: input {tuple(x.shape[2:])} is not a multiple of '
                         f'the logit map {cells}')
    n, c = x.shape[:2]
    sh, sw = x.shape[2] // h, x.shape[3] // w
    blocks = x.reshape(n, c, h, sh, w, sw).permute(0, 2, 4, 1, 3, 5).reshape(n, h * w, c, sh, sw)
    perm = torch.randperm(h * w, generator=generator).to(x.device)
    shuffled = blocks[:, perm].reshape(n, h, w, c, sh, sw).permute(0, 3, 1, 4, 2, 5)
    return shuffled.reshape_as(x), perm


def _shuffle_pixels_per_sample(x: Tensor, generator: torch.Generator) -> Tensor:
    """Shuffle the pixels of (N, C, H, W), each image with its own permutation."""
    n, c = x.shape[:2]
    perm = torch.rand(n, x[0, 0].numel(), generator=generator).argsort(1).to(x.device)
    return x.flatten(2).gather(2, perm[:, None].expand(n, c, -1)).view_as(x)


def _unshuffle_pixels(y: Tensor, perm: Tensor) -> Tensor:
    n, c, h, w = y.shape
    flat = y.flatten(2)
    restored = torch.empty_like(flat)
    restored[:, :, perm] = flat
    return restored.view(n, c, h, w)
