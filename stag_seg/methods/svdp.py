"""SVDP: CoTTA with sparse visual domain prompts placed where the teacher is least sure.

Paper: Yang et al., "Exploring Sparse Visual Prompt for Domain Adaptive Dense Prediction",
AAAI 2024 (https://arxiv.org/abs/2303.09792). Reference: https://github.com/Anonymous-012/SVDP,
``mmseg/apis/test.py``, ``single_gpu_svdp`` (a fork of CoTTA's segmentation code), with
``mmseg/models/backbones/prompt.py`` and the MC-dropout path of its segmentor.

Per step, as the reference does it:

- **uncertainty**: the teacher without its prompt runs its backbone once on the image (whole,
  not slide) and its decode head ``mc_passes`` (10) times with the head's dropout replaced by
  an element-wise dropout of ``mc_dropout`` (0.5); each pass's logits are resized once to the
  original size and turned into probabilities; their population variance over the passes,
  summed over the classes, is the uncertainty map
  (:func:`~stag_seg.methods.teachers.mc_dropout_uncertainty`);
- **prompts**: for each of the 14 views, the map is resized to the view (cubic spline) and the
  model's :class:`~stag_seg.models.SparsePrompt` is put at its most uncertain pixels (the same
  number at every scale; mirrored on flipped views), added to the normalised view;
- the **label** is CoTTA's over the prompted teacher views (anchor gate 0.69 from the
  unprompted anchor); it is the reported prediction;
- the **student** sees the image with its prompt for the plain view, and is trained with
  CoTTA's cross entropy; Adam, fresh at every domain visit;
- the teacher is the EMA (0.999) of the student; the prompt's own rate is
  ``alpha - mean(uncertainty) * prompt_scale``; then CoTTA's stochastic restore (0.01) of the
  tensors named weight or bias (not the prompt).

The released code builds the prompt maps under ``torch.no_grad()``, so the prompt never
receives a gradient: it keeps its random initial values for the whole run (the teacher's prompt
moves only by the rounding of its EMA between equal values). This port does the same and does
not train the prompt; the paper's trained prompt is not what the released code ran.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..registry import TTA_METHODS
from ..structures import StepContext, TapOutput
from .cotta import CoTTA
from .teachers import ema_update, mc_dropout_uncertainty

__all__ = ['SVDP']


@TTA_METHODS.register_module()
class SVDP(CoTTA):
    """CoTTA with sparse prompts at the teacher's MC-dropout uncertain pixels.

    The model must carry a prompt: its backbone wrapped by ``SparsePromptedBackbone``
    (:mod:`stag_seg.models.prompt`, the configs in ``configs/_base_/tta/svdp*.py``).

    Args:
        alpha (float): EMA coefficient of the teacher. Defaults to 0.999.
        confidence (float): Anchor confidence above which the teacher's plain label is kept.
            Defaults to 0.69.
        restore_prob (float): CoTTA's per-element restore probability. Defaults to 0.01.
        mc_passes (int): Dropout passes of the teacher's decode head. Defaults to 10.
        mc_dropout (float): Their element-wise dropout probability. Defaults to 0.5.
        prompt_scale (float): The prompt's EMA rate is ``alpha - mean(uncertainty) *
            prompt_scale``. Defaults to 0.1 (the first of the reference's two runs).
        seed (int): Seed of the restore masks; plus two, of the dropout masks. Defaults to 42.
        **kwargs: ``scales``, ``flip``, ``view_source``, ``views_per_forward``, ``batch_stats``
            (CoTTA's), ``optim_wrapper``, ``regularizers``.
    """

    def __init__(self,
                 alpha: float = 0.999,
                 confidence: float = 0.69,
                 restore_prob: float = 0.01,
                 mc_passes: int = 10,
                 mc_dropout: float = 0.5,
                 prompt_scale: float = 0.1,
                 seed: int = 42,
                 **kwargs) -> None:
        for key in ('views', 'label', 'confidence_mode'):
            if key in kwargs:
                raise TypeError(f'SVDP does not take {key!r}: its reference uses hard labels '
                                'over scale-flip views')
        super().__init__(alpha=alpha, confidence=confidence, restore_prob=restore_prob,
                         seed=seed, **kwargs)
        if not isinstance(mc_passes, int) or mc_passes < 2:
            raise ValueError(f'SVDP.mc_passes must be an int >= 2, got {mc_passes!r}')
        if not 0 <= mc_dropout < 1:
            raise ValueError(f'SVDP.mc_dropout must be in [0, 1), got {mc_dropout}')
        self.mc_passes, self.mc_dropout = mc_passes, mc_dropout
        self.prompt_scale = prompt_scale
        self._mc_generator: torch.Generator | None = None
        self._mc_state: Tensor | None = None  # a loaded state, set on the next generator
        self._positions: dict[tuple[int, int], np.ndarray] = {}
        self._uncertainty: np.ndarray | None = None

    def __repr__(self) -> str:
        return (f'SVDP(alpha={self.alpha}, confidence={self.confidence}, restore_prob='
                f'{self.restore_prob}, mc_passes={self.mc_passes}, mc_dropout={self.mc_dropout}, '
                f'views={len(self.teacher_views)}'
                + (", view_source='original'" if self.view_source == 'original' else '')
                + f', regularizers={self.regularizers})')

    # ------------------------------------------------------------------ configure
    @staticmethod
    def prompt_of(model: nn.Module) -> nn.Module:
        """The model's sparse prompt (``backbone.prompt``), or a clear error."""
        prompt = getattr(getattr(model, 'backbone', None), 'prompt', None)
        if prompt is None or not hasattr(prompt, 'positions'):
            raise ValueError(
                'SVDP needs a sparse prompt on the model\'s backbone: wrap the backbone config '
                "as backbone=dict(type='SparsePromptedBackbone', backbone=<the backbone>, "
                'prompt=dict(sparse_rate=0.001, input_size=(540, 960), seed=42)) '
                '(configs/_base_/tta/svdp.py shows it)')
        return prompt

    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        self.prompt_of(model)
        return super().configure_model(model)

    def setup(self, model: nn.Module) -> None:
        super().setup(model)
        prompt = self.prompt_of(model)
        self._prompt_ids = {id(p) for p in prompt.parameters()}

    def reset_state(self) -> None:
        super().reset_state()
        self._mc_generator, self._mc_state = None, None

    def extra_state(self) -> dict:
        generator = self._mc_generator
        return super().extra_state() | dict(
            mc_generator=None if generator is None else generator.get_state())

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self._mc_generator, self._mc_state = None, state.get('mc_generator')

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._mc_generator is None or self._mc_generator.device != device:
            self._mc_generator = torch.Generator(device=device).manual_seed(self.seed + 2)
            if self._mc_state is not None:
                self._mc_generator.set_state(self._mc_state)
                self._mc_state = None
        return self._mc_generator

    # ------------------------------------------------------------------ one step
    def prepare(self, ctx: StepContext) -> Tensor:
        """The uncertainty map, the prompt positions of every view, CoTTA's label over the
        prompted teacher views; returns the student's prompted input."""
        if ctx.metas is None:
            raise ValueError('SVDP prompts the pixels of a segmentor\'s input; got a classifier')
        if ctx.inputs.size(0) != 1:
            raise ValueError(f'SVDP places one prompt per image, as its reference runs at batch '
                             f'size 1; got a batch of {ctx.inputs.size(0)}')
        with torch.no_grad():
            size = self.teacher_views.size(ctx)
            uncertainty = mc_dropout_uncertainty(
                self.teacher, ctx.inputs, size, self.mc_passes, self.mc_dropout,
                self._generator(ctx.inputs.device))
            self._uncertainty = uncertainty[0].float().cpu().numpy()
            self._positions = {}
            super().prepare(ctx)
            hw = tuple(ctx.inputs.shape[2:])
            student = self.prompt_of(self.model)
            return ctx.inputs + student.prompt_map(self._positions_at(hw), hw, False
                                                   ).to(ctx.inputs)

    def _positions_at(self, hw: tuple[int, int]) -> np.ndarray:
        if hw not in self._positions:
            self._positions[hw] = self.prompt_of(self.model).positions(self._uncertainty, hw)
        return self._positions[hw]

    def view_transform(self, ctx: StepContext):
        prompt = self.prompt_of(self.teacher)

        def transform(view, inputs: Tensor) -> Tensor:
            hw = tuple(inputs.shape[2:])
            return inputs + prompt.prompt_map(self._positions_at(hw), hw, view.flip).to(inputs)

        return transform

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        mean = float(self._uncertainty.mean())
        ctx.stats['svdp_uncertainty'] = mean
        prompt_rate = self.alpha - mean * self.prompt_scale
        rates = [prompt_rate if id(p) in self._prompt_ids else self.alpha
                 for p in self.model.parameters()]
        ema_update(self.teacher, self.model, rates)
        if self.restore_prob > 0:
            self._restore()
