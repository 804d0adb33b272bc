"""DAT: distribution-aware tuning of a few selected tensors, on CoTTA's mean teacher.

Paper: Ni et al., "Distribution-Aware Continual Test-Time Adaptation for Semantic
Segmentation", ICRA 2024 (https://arxiv.org/abs/2309.13604). Reference:
https://github.com/RochelleNi/DAT, ``ours.py``, ``single_gpu_our`` (the release holds only that
step; its driver, model code and config come from CoTTA's segmentation tarball, which it forks).

Per step, as the reference does it:

- the teacher's label is CoTTA's (EMA teacher over 14 scale x flip views, replaced by its
  plain view where the frozen source model, the anchor, is confident above 0.69), and it is
  the reported prediction;
- the anchor's confidence (max probability) on the unflipped views at scales 1.0, 1.25 and 1.5
  is averaged into a map ``u`` (the reference's "uncertainty"; a mean confidence);
- from the student's one forward, two per-pixel cross-entropy losses against the label, each
  averaged over *all* pixels: ``loss_a`` on the pixels with ``u < low`` (0.85), ``loss_b`` on
  those with ``u > high`` (0.99); each is back-propagated in turn;
- during the first ``window`` (100) images of every domain visit, after each backward, every
  tensor is ranked by the L1 norm of its gradient *as the reference's ``.grad`` holds it* and
  the top ``int(N * fraction)`` (N = tensors with a gradient; 0.001 -> 1 of SegFormer-B5's
  1065) are added to the selected list, which is emptied when a visit starts;
- the selected tensors take one step of an Adam built anew (``Adam`` re-created every step:
  each update is a first Adam step, ``lr * g / (|g| + eps)``);
- the teacher is the EMA (0.999) of every tensor; no stochastic restore.

The gradient bookkeeping is the reference's, not the paper's (:meth:`DAT.select_gradients`):
``.grad`` accumulates over steps, the previous step's optimizer clears only the tensors it
held (all of them at a visit's first image) between the two backwards, and the new one clears
the selected ones after its step. So ``loss_a`` never moves an already selected tensor, a newly
selected tensor's first update uses its whole stale sum, and non-selected tensors carry their
sums into the next visit's first ranking. ``stale_grads=False`` clears every gradient each step
instead (an ablation, not the reference).

The reference's SegFormer-B5 keeps attention's query and key-value projections as separate
tensors (``attn.q``, ``attn.kv``); MMSeg's MiT merges them into ``in_proj_weight``. With
``split_in_proj=True`` (default) the ranking runs over the reference's tensors: rows ``[0, C)``
of ``in_proj_weight``/``in_proj_bias`` are the query's, rows ``[C, 3C)`` the key-value's, and a
selected half is updated alone (the other half's gradient is zero, which a first Adam step
leaves in place). Without the split the B5 has 961 tensors and ``int(961 * 0.001) = 0``: DAT
would never update.

The learning rate halves every round in the reference's log (2.5e-4, 1.25e-4, 6.25e-5;
``acdc.log``); its driver is not released. ``round_lr_factor`` (0.5) multiplies the configured
rate once per round after the first.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..registry import TTA_METHODS
from ..structures import MethodLoss, StepContext, TapOutput
from .base import at_positions
from .cotta import CoTTA
from .teachers import label_cross_entropy

__all__ = ['DAT', 'reference_tensors']


@TTA_METHODS.register_module()
class DAT(CoTTA):
    """Distribution-aware tuning: CoTTA's teacher, two masked losses, a few ranked tensors.

    Args:
        alpha (float): EMA coefficient of the teacher. Defaults to 0.999.
        confidence (float): Anchor confidence above which the teacher's plain label is kept.
            Defaults to 0.69.
        low (float): Pixels with mean anchor confidence ``u`` below it make ``loss_a``.
            Defaults to 0.85.
        high (float): Pixels with ``u`` above it make ``loss_b``. Defaults to 0.99.
        uncertainty_scales (Sequence[float]): The unflipped views whose anchor confidence is
            averaged into ``u``. Defaults to (1.0, 1.25, 1.5) (views 4, 6, 8).
        window (int): Images of each domain visit during which tensors are ranked and added.
            Defaults to 100.
        fraction (float): Tensors added per ranking, as a fraction of the tensors that have a
            gradient (rounded down). Defaults to 0.001.
        round_lr_factor (float): The learning rate is multiplied by it once per round after the
            first. Defaults to 0.5.
        split_in_proj (bool): Rank the query and key-value halves of merged attention
            projections as two tensors, as the reference's model has them. Defaults to True.
        stale_grads (bool): Keep the reference's gradient accumulation (see the module
            docstring); False clears every gradient at each step. Defaults to True.
        fresh_optimizer (bool): Build the optimizer anew at every step (the reference); False
            keeps its moments (an ablation). Defaults to True.
        **kwargs: ``scales``, ``flip``, ``view_source``, ``views_per_forward``, ``batch_stats``
            (CoTTA's), ``optim_wrapper``, ``regularizers``.
    """

    adapts = 'parameters'
    uses_gradient_selection = True

    def __init__(self,
                 alpha: float = 0.999,
                 confidence: float = 0.69,
                 low: float = 0.85,
                 high: float = 0.99,
                 uncertainty_scales: Sequence[float] = (1.0, 1.25, 1.5),
                 window: int = 100,
                 fraction: float = 0.001,
                 round_lr_factor: float = 0.5,
                 split_in_proj: bool = True,
                 stale_grads: bool = True,
                 fresh_optimizer: bool = True,
                 **kwargs) -> None:
        for key in ('restore_prob', 'views', 'label', 'confidence_mode'):
            if key in kwargs:
                raise TypeError(f'DAT does not take {key!r}: its reference has no restore and '
                                'uses hard labels over scale-flip views')
        super().__init__(alpha=alpha, confidence=confidence, restore_prob=0.0, **kwargs)
        if not 0 <= fraction <= 1:
            raise ValueError(f'DAT.fraction must be in [0, 1], got {fraction}')
        if window < 0:
            raise ValueError(f'DAT.window must be >= 0, got {window}')
        if round_lr_factor <= 0:
            raise ValueError(f'DAT.round_lr_factor must be > 0, got {round_lr_factor}')
        self.uncertainty_views = []
        for scale in uncertainty_scales:
            index = self.teacher_views.index(scale)
            if index is None:
                raise ValueError(f'DAT.uncertainty_scales: {scale} is not among the teacher '
                                 f'scales {self.scales}')
            self.uncertainty_views.append(index)
        self.low, self.high = low, high
        self.uncertainty_scales = tuple(uncertainty_scales)
        self.window, self.fraction = window, fraction
        self.round_lr_factor = round_lr_factor
        self.split_in_proj, self.stale_grads = split_in_proj, stale_grads
        self.fresh_optimizer = fresh_optimizer
        self.units: list[tuple[str, int, slice | None]] = []  # name, param index, rows
        self._round = 1
        self._clear_selection()

    def __repr__(self) -> str:
        return (f'DAT(alpha={self.alpha}, confidence={self.confidence}, low={self.low}, '
                f'high={self.high}, window={self.window}, fraction={self.fraction}, views='
                f'{len(self.teacher_views)}'
                + (", view_source='original'" if self.view_source == 'original' else '')
                + f', regularizers={self.regularizers})')

    def _clear_selection(self) -> None:
        self._accum: list[Tensor | None] = [None] * len(self.units)  # the reference's .grad
        self._selected: list[int] = []  # units, in the order they were added
        self._previous: list[int] | None = None  # the last optimizer's units (None: all)
        self._visit_step = 0

    # ------------------------------------------------------------------ configure
    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        # the reference's driver leaves every tensor trainable (its Adam #0 holds all)
        named = list(model.named_parameters())
        return [p for _, p in named], [n for n, _ in named]

    def setup(self, model: nn.Module) -> None:
        super().setup(model)
        params = [p for group in self.optim_wrapper.param_groups for p in group['params']]
        units = reference_tensors(model, params, self.split_in_proj)
        self.units = units
        self._params = params
        self._clear_selection()
        self._apply_round_lr()

    def reset_state(self) -> None:
        super().reset_state()
        self._round = 1
        self._clear_selection()

    def extra_state(self) -> dict:
        return super().extra_state() | dict(dat=dict(
            accum=list(self._accum), selected=list(self._selected),
            previous=None if self._previous is None else list(self._previous),
            visit_step=self._visit_step, round=self._round))

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        dat = state['dat']
        self._accum = list(dat['accum'])
        self._selected = list(dat['selected'])
        self._previous = None if dat['previous'] is None else list(dat['previous'])
        self._visit_step, self._round = dat['visit_step'], dat['round']
        self._apply_round_lr()

    # ------------------------------------------------------------------ visits and rates
    def begin_domain(self, round_idx: int, domain_index: int) -> None:
        """A domain visit starts: its image counter at 0 (the ranking window and the emptied
        selection at its first image), the previous optimizer = all tensors, and the round's
        learning rate."""
        self._round = round_idx
        self._visit_step = 0
        self._previous = None
        self._apply_round_lr()

    def round_lr(self, lr: float) -> float:
        """The configured rate ``lr`` in the current round."""
        return lr * self.round_lr_factor ** (self._round - 1)

    def _apply_round_lr(self) -> None:
        if self.optim_wrapper is None or self._source_optim is None:
            return
        for group, source in zip(self.optim_wrapper.param_groups,
                                 self._source_optim['param_groups']):
            group['lr'] = self.round_lr(source['lr'])

    def reset_optimizer(self) -> None:
        super().reset_optimizer()
        self._apply_round_lr()

    # ------------------------------------------------------------------ one step
    def prepare(self, ctx: StepContext) -> None:
        """CoTTA's label, and the anchor's mean confidence ``u`` over the uncertainty views."""
        if ctx.metas is None:
            raise ValueError('DAT masks the pixels of a segmentor\'s prediction; got a classifier')
        super().prepare(ctx)
        with torch.no_grad():
            plain = self.teacher_views.index(1.0)
            others = [v for v in self.teacher_views.all
                      if v.index in self.uncertainty_views and v.index != plain]
            probs = (self.teacher_views.run(self.anchor, ctx, views=others, average=False,
                                            keep=[v.index for v in others]).views
                     if others else {})
            total = None
            for index in self.uncertainty_views:  # in the reference's order, then divided
                conf = (ctx.state['cotta_anchor_confidence'] if index == plain
                        else probs[index].amax(1))
                total = conf if total is None else total + conf
            ctx.state['dat_u'] = total / len(self.uncertainty_views)

    def _masked_terms(self, out: TapOutput, ctx: StepContext, mask: Tensor) -> Tensor:
        """Each pixel's cross entropy on the label where ``mask``, else 0 (the loss is their
        mean over all pixels, as the reference takes it)."""
        per_pos = ctx.state.get('dat_ce')
        if per_pos is None:
            per_pos = ctx.state['dat_ce'] = label_cross_entropy(out, ctx, ctx.state['cotta_label'])
        if mask.shape != per_pos.shape:
            raise ValueError(f'DAT: the confidence map {tuple(mask.shape)} and the loss map '
                             f'{tuple(per_pos.shape)} differ in size')
        return per_pos * mask.to(per_pos.dtype)

    def _masked_loss(self, out: TapOutput, ctx: StepContext, mask: Tensor, name: str,
                     stats: dict) -> MethodLoss:
        """The masked mean as the step's loss (its value logged as ``name``), whose terms a
        regularizer may reweight."""
        terms = self._masked_terms(out, ctx, mask)
        loss = terms.mean()
        return MethodLoss(loss, mask=out.valid, stats={name: float(loss.detach()), **stats},
                          reweight=lambda m: (terms * at_positions(m, terms)).mean())

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        """``loss_a``: cross entropy on the pixels the anchor is unsure of (``u < low``)."""
        low = ctx.state['dat_u'] < self.low
        return self._masked_loss(out, ctx, low, 'dat_loss_a', dict(
            dat_low=float(low.float().mean()),
            cotta_confident=ctx.state['cotta_confident']))

    def second_loss(self, out: TapOutput, first: MethodLoss, ctx: StepContext) -> MethodLoss:
        """``loss_b``: cross entropy on the pixels the anchor is sure of (``u > high``)."""
        high = ctx.state['dat_u'] > self.high
        return self._masked_loss(out, ctx, high, 'dat_loss_b', dict(
            dat_high=float(high.float().mean()),
            dat_selected=len(self._selected),
            dat_lr=float(self.optim_wrapper.param_groups[0]['lr'])))

    def _unit_grad(self, grads: list[Tensor | None], unit: int) -> Tensor | None:
        _, k, rows = self.units[unit]
        grad = grads[k]
        if grad is None:
            return None
        return grad.detach() if rows is None else grad.detach()[rows]

    def _accumulate(self, grads: list[Tensor | None]) -> None:
        for u in range(len(self.units)):
            grad = self._unit_grad(grads, u)
            if grad is None:
                continue
            self._accum[u] = grad.clone() if self._accum[u] is None else self._accum[u] + grad

    def _rank_and_add(self) -> None:
        """Rank every tensor with a gradient by the L1 norm of what it holds; add the first
        ``int(N * fraction)`` not yet selected (ties keep the parameter order)."""
        scores = [(u, float(a.abs().sum())) for u, a in enumerate(self._accum) if a is not None]
        order = sorted(scores, key=lambda item: item[1], reverse=True)  # stable
        for u, _ in order[:int(len(order) * self.fraction)]:
            if u not in self._selected:
                self._selected.append(u)

    def _clear(self, units) -> None:
        for u in units:
            if self._accum[u] is not None:
                self._accum[u].zero_()

    def select_gradients(self, first: list[Tensor | None],
                         second: list[Tensor | None]) -> list[Tensor | None]:
        """The reference's ``.grad`` bookkeeping over one step (module docstring); returns the
        gradient of each parameter for this step's fresh optimizer (None: not updated)."""
        i = self._visit_step
        if not self.stale_grads:
            self._clear(range(len(self.units)))
        self._accumulate(first)
        if i == 0:
            self._selected = []
        if i < self.window:
            self._rank_and_add()
        self._clear(range(len(self.units)) if i == 0 or self._previous is None
                    else self._previous)
        self._accumulate(second)
        if i < self.window:
            self._rank_and_add()
        chosen: list[Tensor | None] = [None] * len(self._params)
        for u in self._selected:
            _, k, rows = self.units[u]
            acc = self._accum[u]
            if acc is None:
                continue
            if rows is None:
                chosen[k] = acc.clone()
            else:
                if chosen[k] is None:
                    chosen[k] = torch.zeros_like(self._params[k])
                chosen[k][rows] = acc
        self._clear(self._selected)
        self._previous = list(self._selected)
        self._visit_step += 1
        return chosen

    def selected_names(self) -> list[str]:
        """The selected tensors (the reference's names for split projections), in order."""
        return [self.units[u][0] for u in self._selected]


def reference_tensors(model: nn.Module, params: Sequence[nn.Parameter],
                      split_in_proj: bool = True) -> list[tuple[str, int, slice | None]]:
    """The tensors DAT ranks, as ``(name, index of the parameter in params, rows)`` in
    ``named_parameters`` order: every parameter of ``params``, with each
    ``nn.MultiheadAttention``'s merged input projection split (``split_in_proj``) into the
    query rows ``[0, C)`` and the key-value rows ``[C, 3C)`` of the reference's
    SegFormer (named ``<attention>.q.weight``, ``.q.bias``, ``.kv.weight``, ``.kv.bias``, in its
    order). SegFormer-B5 gives 1065, the reference's count."""
    index = {id(p): k for k, p in enumerate(params)}
    modules = dict(model.named_modules())
    units: list[tuple[str, int, slice | None]] = []
    for name, param in model.named_parameters():
        if id(param) not in index:
            continue
        prefix, _, leaf = name.rpartition('.')
        owner = modules.get(prefix)
        if (split_in_proj and leaf in ('in_proj_weight', 'in_proj_bias')
                and isinstance(owner, nn.MultiheadAttention)):
            if leaf == 'in_proj_bias':
                continue  # emitted with the weight, in the reference's order
            dim, bias = owner.embed_dim, owner.in_proj_bias
            for part, rows in (('q', slice(0, dim)), ('kv', slice(dim, 3 * dim))):
                units.append((f'{prefix}.{part}.weight', index[id(param)], rows))
                if bias is not None and id(bias) in index:
                    units.append((f'{prefix}.{part}.bias', index[id(bias)], rows))
        else:
            units.append((name, index[id(param)], None))
    return units
