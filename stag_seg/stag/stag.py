"""``STAG``, the registered regularizer: a thin stateful wrapper around :func:`stag_loss`.

It keeps the anchors (frozen: taken once from the source classifier; live: retaken from the
current classifier every step) and, while the classifier does not change, the Gram matrices.
"""
from __future__ import annotations

import inspect

from torch import Tensor

from ..registry import TTA_REGULARIZERS
from .anchors import Anchors, compute_anchors
from .entropy import GRADIENTS
import torch

from .loss import (FORMS, REWEIGHTS, SPACES, WEIGHTINGS, _broadcast, alignment_multiplier,
                   gram_matrices, stag_cosine, stag_loss)

ANCHOR_MODES = ('frozen', 'live')
#: What the alignment does: a loss term, a reweighting of the base method's loss, or both.
MODES = ('loss', 'reweight', 'loss+reweight')


@TTA_REGULARIZERS.register_module()
class STAG:
    """Structural Test-time Alignment of Gradients.

    Computes, from forward-pass quantities only, the alignment ``cos(dH/dz, a_y)`` of each
    position's entropy gradient with its predicted class's anchor, and uses it in one of two
    ways (``mode``). By default (``'reweight'``) it adds no loss term: each of the base
    method's per-position loss terms is multiplied by the detached ``(1 + cos) / 2``, so a
    position whose gradient disagrees with its class's anchor counts less. With ``'loss'`` it
    adds ``weight * mean(u * (1 - cos))`` over the positions the method selected, ``u`` the
    position's detached ``H / ln C`` by default (``weighting``). One backward pass for the
    whole step either way. The options choose the reading (docs/design.md, "STAG"). The
    default is the choice of the second pre-registered study (projects/stag_study/README.md):
    the smooth weighting, which harmed no dev cell; ``weight`` and ``weighting`` keep the
    first study's choice for ``mode='loss'``.

    Args:
        weight (float): lambda, the loss weight (``mode='loss'`` or ``'loss+reweight'``).
            Defaults to 0.5.
        space (str): Where the gradients are compared: ``'feature'``, ``'logit'`` or
            ``'weight'`` (docs/design.md, "STAG"). Defaults to ``'feature'``.
        gradient (str): The logit gradient aligned: ``'entropy'`` (``dH/dl``) or
            ``'cross_entropy'`` (``p - e_y``, the predicted class's cross entropy, whose
            direction does not depend on the confidence). Defaults to ``'entropy'``.
        weighting (str): ``'none'``, or ``'entropy'``: each position's term times its detached
            normalised entropy ``H / ln C``. Defaults to ``'entropy'``.
        form (str): ``'gram'`` (C-dimensional per position) or ``'explicit'`` (builds the
            gradients; for checking). Defaults to ``'gram'``.
        temperature (float): Softmax temperature tau. Defaults to 1.0.
        anchor_temperature (float, optional): The temperature of the prototypes' softmax
            ``q_c``; above 1 softens anchors whose ``q_c`` is near one-hot. Defaults to None
            (``temperature``).
        use_bias (bool): Include the classifier bias in the prototype logits. Defaults to True.
        anchors (str): ``'frozen'`` (from the source classifier, taken at the first step) or
            ``'live'`` (from the current classifier at every step, for methods that update it).
            Defaults to ``'frozen'``.
        eps (float): Gradient norms at or below ``eps`` count as zero. Defaults to 1e-12.
        mode (str): ``'loss'`` (the loss term above), ``'reweight'`` (no loss term: the base
            method's per-position loss terms are multiplied by a detached function of the
            alignment, :func:`~stag_seg.stag.loss.alignment_multiplier`) or
            ``'loss+reweight'`` (both; the loss term keeps the method's own weights).
            Defaults to ``'reweight'``.
        reweight (str): The function of ``mode='reweight'``: ``'threshold'``, ``'smooth'`` or
            ``'threshold+smooth'``. Defaults to ``'smooth'``.
        threshold (float): The threshold's cosine. Defaults to 0.0.
        power (float): The smooth weight's exponent. Defaults to 1.0.
    """

    def __init__(self,
                 weight: float = 0.5,
                 space: str = 'feature',
                 gradient: str = 'entropy',
                 weighting: str = 'entropy',
                 form: str = 'gram',
                 temperature: float = 1.0,
                 anchor_temperature: float | None = None,
                 use_bias: bool = True,
                 anchors: str = 'frozen',
                 eps: float = 1e-12,
                 mode: str = 'reweight',
                 reweight: str = 'smooth',
                 threshold: float = 0.0,
                 power: float = 1.0) -> None:
        if space not in SPACES:
            raise ValueError(f'STAG.space must be one of {SPACES}, got {space!r}')
        if gradient not in GRADIENTS:
            raise ValueError(f'STAG.gradient must be one of {GRADIENTS}, got {gradient!r}')
        if weighting not in WEIGHTINGS:
            raise ValueError(f'STAG.weighting must be one of {WEIGHTINGS}, got {weighting!r}')
        if form not in FORMS:
            raise ValueError(f'STAG.form must be one of {FORMS}, got {form!r}')
        if anchors not in ANCHOR_MODES:
            raise ValueError(f'STAG.anchors must be one of {ANCHOR_MODES}, got {anchors!r}')
        if temperature <= 0:
            raise ValueError(f'STAG.temperature must be > 0, got {temperature}')
        if anchor_temperature is not None and anchor_temperature <= 0:
            raise ValueError(f'STAG.anchor_temperature must be > 0 or None, got '
                             f'{anchor_temperature}')
        if weight < 0:
            raise ValueError(f'STAG.weight must be >= 0, got {weight}')
        if mode not in MODES:
            raise ValueError(f'STAG.mode must be one of {MODES}, got {mode!r}')
        if reweight not in REWEIGHTS:
            raise ValueError(f'STAG.reweight must be one of {REWEIGHTS}, got {reweight!r}')
        if power <= 0:
            raise ValueError(f'STAG.power must be > 0, got {power}')
        if mode == 'reweight':
            # the loss term's options would be silently ignored: the default mode has no loss
            defaults = self.defaults()
            given = [f'{k}={v!r}' for k, v in (('weight', weight), ('weighting', weighting))
                     if v != defaults[k]]
            if given:
                raise ValueError(f'STAG: {", ".join(given)} set the loss term, which '
                                 "mode='reweight' (the default) does not add; give "
                                 "mode='loss' (or 'loss+reweight') with them")
        self.weight = float(weight)
        self.space = space
        self.gradient = gradient
        self.weighting = weighting
        self.form = form
        self.temperature = float(temperature)
        self.anchor_temperature = None if anchor_temperature is None else float(anchor_temperature)
        self.use_bias = use_bias
        self.anchor_mode = anchors
        self.eps = eps
        self.mode = mode
        self.reweight = reweight
        self.threshold = float(threshold)
        self.power = float(power)
        self.anchors: Anchors | None = None
        self._gram_key: tuple | None = None
        self._gram_anchors: Anchors | None = None
        self._gram: tuple[Tensor, Tensor] | None = None

    @property
    def name(self) -> str:
        """``'STAG'``, with the options that differ from the defaults: ``'STAG(space=logit,
        weight=4)'``. Results files name regularizers this way."""
        defaults = self.defaults()
        values = self._options()
        diff = [f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}'
                for k, v in values.items() if v != defaults[k]]
        return f'STAG({", ".join(diff)})' if diff else 'STAG'

    @classmethod
    def defaults(cls) -> dict:
        """STAG's options and their defaults, read from the signature of ``__init__`` (the one
        place they are written): what ``STAGHook`` and ``configs/_base_/tta/stag.py`` inherit."""
        return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}

    def _options(self) -> dict:
        """The options that choose the loss (all of ``__init__``'s but ``eps``)."""
        options = dict(weight=self.weight, space=self.space, gradient=self.gradient,
                       weighting=self.weighting, form=self.form, temperature=self.temperature,
                       anchor_temperature=self.anchor_temperature, use_bias=self.use_bias,
                       anchors=self.anchor_mode, mode=self.mode)
        if self.mode != 'loss':  # the reweighting's own options mean nothing without it
            options.update(reweight=self.reweight, threshold=self.threshold, power=self.power)
        return options

    def __repr__(self) -> str:
        return f'STAG({", ".join(f"{k}={v!r}" for k, v in self._options().items())})'

    def __call__(self,
                 logits: Tensor,
                 weight: Tensor,
                 bias: Tensor | None = None,
                 features: Tensor | None = None,
                 mask: Tensor | None = None,
                 weights: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """The weighted STAG loss of one step and its statistics.

        Args:
            logits (Tensor): (N, C, *) at the classifier's resolution.
            weight (Tensor): (C, D) classifier weight. bias (Tensor, optional): (C,).
            features (Tensor, optional): (N, D, *) classifier inputs (``space='weight'``).
            mask (Tensor, optional): (N, *) or (N,) positions the method selected.
            weights (Tensor, optional): (N, *) or (N,) the method's weights.

        Returns:
            tuple[Tensor, dict]: ``weight * L_STAG`` and ``{'stag_loss', 'stag_cos',
            'stag_used'}`` (unweighted loss, mean cosine and fraction of positions used).
        """
        if self.mode == 'reweight':  # no loss term: multiplier() does the work
            return logits.new_zeros(()), {}
        anchors = self._anchors_for(weight, bias)
        gram = self._gram_for(weight, anchors)
        loss, cos, used = stag_loss(logits, weight, anchors, features, mask, weights,
                                    self.space, self.form, self.temperature, self.eps, gram,
                                    self.gradient, self.weighting)
        n_used = int(used.sum())
        # a masked sum, not cos[used]: boolean indexing costs a nonzero() and a copy per step
        stats = dict(stag_loss=float(loss.detach()),
                     stag_cos=float((cos.detach() * used).sum()) / n_used if n_used
                     else float('nan'),
                     stag_used=n_used / max(used.numel(), 1))
        return self.weight * loss, stats

    def multiplier(self,
                   logits: Tensor,
                   weight: Tensor,
                   bias: Tensor | None = None,
                   features: Tensor | None = None,
                   mask: Tensor | None = None,
                   weights: Tensor | None = None) -> tuple[Tensor | None, dict[str, float]]:
        """The weighting reading's multiplier of the base method's per-position terms, or None
        with ``mode='loss'``.

        Returns:
            tuple: The detached (N, *) multiplier (1 where the cosine is undefined) and
            ``{'stag_cos', 'stag_multiplier'}`` (the mean cosine and mean multiplier over the
            positions the method selected).
        """
        if self.mode == 'loss':
            return None, {}
        with torch.no_grad():
            detached = (logits.detach(), weight.detach(),
                        None if bias is None else bias.detach(),
                        None if features is None else features.detach())
            anchors = self._anchors_for(detached[1], detached[2])
            cos, valid = stag_cosine(detached[0], detached[1], anchors, detached[3], self.space,
                                     self.form, self.temperature, self.eps,
                                     gradient=self.gradient)
            multiplier = alignment_multiplier(cos, valid, self.reweight, self.threshold,
                                              self.power)
            used = valid if mask is None else valid & _broadcast(mask, cos, 'mask').bool()
            n_used = int(used.sum())
            stats = dict(stag_cos=float((cos * used).sum()) / n_used if n_used
                         else float('nan'),
                         stag_multiplier=float(multiplier.mean()))
        return multiplier, stats

    def reset(self, keep_anchors: bool = True) -> None:
        """Forget the cached Gram matrices and live anchors.

        Args:
            keep_anchors (bool): Keep frozen anchors, which are the source classifier's and
                survive a reset to that source. False forgets them too (a new source model).
        """
        self._gram_key = self._gram = self._gram_anchors = None
        if self.anchor_mode == 'live' or not keep_anchors:
            self.anchors = None

    def state_dict(self) -> dict:
        """The anchors (frozen ones are the source classifier's: a resumed run keeps them)."""
        return dict(anchors=list(self.anchors) if self.anchors is not None else None)

    def load_state_dict(self, state: dict) -> None:
        self.reset(keep_anchors=False)
        if state['anchors'] is not None:
            self.anchors = Anchors(*state['anchors'])

    def _anchors_for(self, weight: Tensor, bias: Tensor | None) -> Anchors:
        if self.anchors is None or self.anchor_mode == 'live':
            tau = self.temperature if self.anchor_temperature is None else self.anchor_temperature
            self.anchors = compute_anchors(weight, bias, tau, self.use_bias, self.gradient)
        elif self.anchors.features.device != weight.device:
            self.anchors = Anchors(*(t.to(weight.device) for t in self.anchors))
        return self.anchors

    def _gram_for(self, weight: Tensor, anchors: Anchors) -> tuple[Tensor, Tensor] | None:
        """Gram matrices, recomputed only when the classifier or the anchors changed."""
        if self.space != 'feature' or self.form != 'gram':
            return None
        if weight.requires_grad:  # part of the graph: recompute so gradients reach W
            return gram_matrices(weight, anchors, self.eps)
        key = (weight.data_ptr(), weight._version)
        if key != self._gram_key or anchors is not self._gram_anchors:
            self._gram = gram_matrices(weight, anchors, self.eps)
            self._gram_key, self._gram_anchors = key, anchors
        return self._gram
