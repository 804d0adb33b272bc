"""RoTTA: robust test-time adaptation in dynamic scenarios.

Paper: Yuan, Xie and Li, "Robust Test-Time Adaptation in Dynamic Scenarios", CVPR 2023
(https://arxiv.org/abs/2303.13899). Reference: https://github.com/BIT-DA/RoTTA
(``core/adapter/rotta.py``), and its port in mariodoebler/test-time-adaptation
(``classification/methods/rotta.py``), whose numbers the benchmark tables quote.

Per batch:

1. the teacher, in eval mode, predicts the batch: its logits are the prediction, its argmax the
   pseudo-labels, ``-sum p log(p + 1e-6)`` the uncertainties;
2. each sample in turn is offered to the category-balanced memory bank
   (:mod:`~stag_seg.methods.memory`); after every ``update_frequency``-th sample of the stream
   (so an update may fall mid-batch) the model updates once: both models in train mode, the
   teacher on the memory's samples (its robust statistics move), the student on a strong view
   of them (the CoTTA transform, :mod:`~stag_seg.methods.augment`; its statistics move), the
   loss ``mean_i w_i CE(student_i, teacher_i)`` with the timeliness weight
   ``w = exp(-a) / (1 + exp(-a))``, ``a = age / capacity`` (Eq. 9-10); then the teacher
   becomes an EMA of the student (``nu``, every parameter, buffers not);
3. every BatchNorm is a robust one (:mod:`~stag_seg.methods.robust_bn`, ``alpha``), built when
   the method attaches and undone when it is released. Trained: their affine parameters and,
   as the benchmark port does (``adapt_other_norms``), LayerNorm's and GroupNorm's.

Where this differs from the reference, and why:

- The reference updates inside its forward, as often as the batch holds update points; here the
  step does the one backward of a step, so a batch may hold at most one update point: the batch
  size must not exceed ``update_frequency`` (BIT-DA's protocol, batch 64 with 64). The benchmark
  port's CIFAR configs (batch 200, three or four updates per batch) cannot run as they are; a
  batch with two update points raises.
- The student also runs once on the test batch in eval mode, the step's main forward. It changes
  nothing (robust layers hold their statistics in eval mode, dropout is off) and costs one
  forward; the loss, and STAG with it (``MethodLoss.out``), is on the memory forward.
- The benchmark port's fp32 path calls ``loss_calculation(x)`` with an argument it does not take
  (a ``TypeError``); ported is the intended update, BIT-DA's.
- The EMA is written ``m t + (1 - m) s`` with ``m = 1 - nu``, as the port writes it; BIT-DA's
  ``(1 - nu) t + nu s`` differs by rounding only.
- The views' random draws come from the method's generator, seeded with ``seed``, in the
  reference transform's order (:func:`~stag_seg.methods.augment.draw_reference_view`): the
  reference draws them from torch's global generator.
- The memory holds the preprocessed images; views are drawn in pixel space ([0, 1], as the
  reference's inputs) and normalised again.
- ``reset()`` is the port's (BIT-DA has none): weights, teacher, optimizer, memory and counter;
  the view generator runs on. For classifiers only: the memory keeps one label per image.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..registry import TTA_METHODS
from ..structures import StepContext, TapOutput
from .augment import apply_view, draw_reference_view, pixel_statistics, to_inputs, to_pixels
from .base import BaseTTAMethod, MethodLoss, at_positions
from .losses import soft_cross_entropy
from .memory import CategoryBalancedMemory
from .params import collect_norm_params
from .robust_bn import RobustBatchNorm, replace_batchnorm, restore_batchnorm
from .teachers import ema_update, frozen_copy

__all__ = ['RoTTA', 'timeliness_weights']


def timeliness_weights(ages: list[float]) -> Tensor:
    """``exp(-a) / (1 + exp(-a))`` of each age (over the capacity), in float32 as the reference
    builds them (``torch.tensor(ages).float()``)."""
    ages = torch.tensor(ages, dtype=torch.float32)
    return torch.exp(-ages) / (1 + torch.exp(-ages))


@TTA_METHODS.register_module()
class RoTTA(BaseTTAMethod):
    """Robust BatchNorm, a category-balanced memory bank and a timeliness-weighted teacher.

    Args:
        memory_size (int): Capacity of the memory bank. Defaults to 64.
        update_frequency (int): Update after every this many samples. Defaults to 64.
        nu (float): EMA rate of the teacher (its momentum is ``1 - nu``). Defaults to 0.001.
        alpha (float): Robust BatchNorm's weight of the batch statistics. Defaults to 0.05.
        lambda_t (float): Weight of the memory score's timeliness term. Defaults to 1.0.
        lambda_u (float): Weight of its uncertainty term. Defaults to 1.0.
        adapt_other_norms (bool): Also train LayerNorm and GroupNorm affine parameters, as the
            benchmark port does; False trains the robust BatchNorm layers only (BIT-DA's code,
            written for BatchNorm networks). Defaults to True.
        seed (int, optional): Seed of the views' generator; None takes the seed of torch's
            global generator (MMEngine's ``randomness.seed``). Defaults to None.
        **kwargs: ``optim_wrapper`` (the reference's Adam, lr 1e-3), ``regularizers``,
            ``reset_every``.
    """

    adapts = ('affine parameters of BatchNorm (made robust), LayerNorm and GroupNorm layers '
              '(BatchNorm only with adapt_other_norms=False)')

    def __init__(self,
                 memory_size: int = 64,
                 update_frequency: int = 64,
                 nu: float = 0.001,
                 alpha: float = 0.05,
                 lambda_t: float = 1.0,
                 lambda_u: float = 1.0,
                 adapt_other_norms: bool = True,
                 seed: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        for key, value in (('memory_size', memory_size), ('update_frequency', update_frequency)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'RoTTA.{key} must be an int >= 1, got {value!r}')
        for key, value in (('nu', nu), ('alpha', alpha)):
            if not 0 <= value <= 1:
                raise ValueError(f'RoTTA.{key} must be in [0, 1], got {value}')
        self.memory_size, self.update_frequency = memory_size, update_frequency
        self.nu, self.alpha = nu, alpha
        self.lambda_t, self.lambda_u = lambda_t, lambda_u
        self.adapt_other_norms = adapt_other_norms
        self.seed = seed
        self.generator = torch.Generator()
        self.teacher: nn.Module | None = None
        self.memory: CategoryBalancedMemory | None = None
        self.instances = 0  # samples offered to the memory since the source
        self._swaps: list = []
        self._pending: list[tuple[Tensor, int, float]] = []
        self._updated = False

    def __repr__(self) -> str:
        return (f'RoTTA(memory_size={self.memory_size}, update_frequency={self.update_frequency}, '
                f'nu={self.nu}, alpha={self.alpha}, regularizers={self.regularizers})')

    # ------------------------------------------------------------------ configure
    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        self._swaps = replace_batchnorm(model, self.alpha)
        return []  # the modes are set per phase: eval to predict, train to update

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        types = ((RobustBatchNorm, nn.LayerNorm, nn.GroupNorm) if self.adapt_other_norms
                 else (RobustBatchNorm, ))
        return collect_norm_params(model, types)

    def setup(self, model: nn.Module) -> None:
        self.teacher = frozen_copy(model, self)
        self._pixels = pixel_statistics(model)
        self.generator.manual_seed(torch.initial_seed() if self.seed is None else self.seed)

    def release(self) -> None:
        restore_batchnorm(self._swaps)
        self._swaps = []
        super().release()

    def reset_state(self) -> None:
        if self.teacher is not None:
            self.teacher.load_state_dict(self._source_state)
        self.memory, self.instances, self._pending, self._updated = None, 0, [], False

    def extra_state(self) -> dict:
        return dict(teacher=self.teacher.state_dict() if self.teacher is not None else None,
                    memory=self.memory.state_dict() if self.memory is not None else None,
                    instances=self.instances, pending=list(self._pending),
                    generator=self.generator.get_state())

    def load_extra_state(self, state: dict) -> None:
        if state['teacher'] is not None:
            self.teacher.load_state_dict(state['teacher'])
        self.memory = None
        if state['memory'] is not None:
            self._new_memory(len(state['memory']['items']))
            self.memory.load_state_dict(state['memory'])
        self.instances, self._pending = state['instances'], list(state['pending'])
        self.generator.set_state(state['generator'])

    # ------------------------------------------------------------------ one step
    def strong_view(self, inputs: Tensor) -> Tensor:
        """The reference's strong augmentation of preprocessed inputs, one draw for the batch."""
        pixels = to_pixels(inputs, self._pixels)
        view = apply_view(pixels, draw_reference_view(self.generator, tuple(pixels.shape)))
        return to_inputs(view, self._pixels)

    def prediction(self, out: TapOutput, ctx: StepContext) -> Tensor:
        """The teacher's eval-mode logits; its labels and uncertainties wait to enter the
        memory."""
        if out.logits.dim() != 2:
            raise ValueError('RoTTA is defined for classifiers (its memory bank keeps one '
                             f'pseudo-label per image), got logits {tuple(out.logits.shape)}')
        self._offer(self._pending)  # what a dropped step left
        self._updated = False
        if self.memory is None:
            self._new_memory(out.num_classes)
        num = out.logits.size(0)
        points = (self.instances + num) // self.update_frequency \
            - self.instances // self.update_frequency
        if points > 1:
            raise ValueError(f'RoTTA updates after every update_frequency='
                             f'{self.update_frequency} samples, once per step: a batch of {num} '
                             f'holds {points} update points; use a batch size <= '
                             f'{self.update_frequency}')
        self.teacher.eval()
        logits = ctx.logits_fn(self.teacher, ctx.inputs)
        probs = logits.softmax(1)
        labels = probs.argmax(1)
        uncertainty = torch.sum(-probs * torch.log(probs + 1e-6), dim=1)
        self._pending = [(ctx.inputs[i].detach().clone(), int(labels[i]), float(uncertainty[i]))
                         for i in range(num)]
        return logits

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        due = self._offer(self._pending, until_update=True)
        stats = dict(rotta_memory=len(self.memory) / self.memory_size)
        if not due:
            return MethodLoss(out.logits.new_zeros(()), stats=stats, skip=True)
        data, ages = self.memory.contents()
        images = torch.stack(data)
        view = self.strong_view(images)
        mode = self.model.training
        self.model.train()
        self.teacher.train()
        with torch.no_grad():
            target = ctx.logits_fn(self.teacher, images)
        student = ctx.forward(view)
        self.model.train(mode)
        self.teacher.eval()
        weights = timeliness_weights(ages).to(student.logits)
        terms = soft_cross_entropy(student.logits, target) * weights
        loss = terms.mean()
        self._updated = True
        stats['rotta_ce'] = float(loss.detach())
        return MethodLoss(loss, weights=weights, out=student, stats=stats,
                          reweight=lambda m: (terms * at_positions(m, terms)).mean())

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        if self._updated:
            ema_update(self.teacher.parameters(), self.model.parameters(), 1 - self.nu)
        ctx.stats['rotta_updated'] = float(self._updated)
        self._updated = False
        self._offer(self._pending)

    def _offer(self, pending: list, until_update: bool = False) -> bool:
        """Offer the pending samples in order; with ``until_update``, stop after the one that
        completes ``update_frequency`` and return True."""
        while pending:
            data, label, uncertainty = pending.pop(0)
            self.memory.add(data, label, uncertainty)
            self.instances += 1
            if until_update and self.instances % self.update_frequency == 0:
                return True
        return False

    def _new_memory(self, num_classes: int) -> None:
        self.memory = CategoryBalancedMemory(self.memory_size, num_classes, self.lambda_t,
                                             self.lambda_u)
