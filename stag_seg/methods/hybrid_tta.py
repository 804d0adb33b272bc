"""Hybrid-TTA: a mean teacher, masked-image-modelling adaptation and a shift detector that
switches between full and adapter tuning.

Paper: Park et al., "Hybrid-TTA: Continual Test-time Adaptation via Dynamic Domain Shift
Detection", ICCV 2025 (https://arxiv.org/abs/2409.08566). Reference:
https://github.com/hhhyyeee/Hybrid-TTA, ``scripts/ours.py`` with the step
``mmseg/apis/test_feat.py::single_gpu_our``, the segmentor
``mmseg/models/segmentors/mood_encoder_decoder.py`` (``forward_train_simmim``) and its parent
``simmim_encoder_decoder.py`` (mask generator, loss sum, freezing), and the detector
``mmseg/ood/base.py`` (``loss_seg_with_wma``), run with
``local_configs/segformer/B5/segformer.b5.960x540.acdc.160k.new.py``.

Per step, as the released step runs it (the plain variant, without ``--aug-test``):

- the **teacher**, an EMA of the student (0.999), predicts the image through the model's own
  inference (slide or whole), its probabilities at the original size; their argmax is the
  pseudo-label and the scored prediction (predict, then adapt);
- a **mask** of ``mask_ratio`` (60%) of the ``mask_patch_size`` (32 px) squares of the input,
  exactly ``ceil(n * ratio)`` of them, drawn by ``permutation`` from a NumPy ``RandomState``
  seeded by ``seed`` (the reference: NumPy's global generator, seed 42), replaces those stage-1
  tokens by the backbone's mask token (:mod:`stag_seg.models.hybrid_mit`);
- the **student's one forward** is that masked forward: its decoder logits, resized once to the
  original size, give the cross entropy against the pseudo-label (mean over all pixels), and
  the same features give the reconstruction (the backbone's ``recon_neck``) whose L1 to the
  normalised input, over the masked pixels, divided by (masked pixels x 3), is the MIM loss;
  the loss is ``CE + recon_weight * L1`` (0.3);
- the **shift detector** (DDSD) reads this step's mean CE, between the forward and the
  backward: it keeps every value; from the ``window``-th (10) on, the plain mean of the last
  ``window`` below ``(1 + margin) * threshold`` (margin 0.1) means adapter tuning, else full
  tuning; the threshold is an EMA (``detector_alpha`` 0.999) of the CE that starts at
  ``threshold`` (0.0) and is updated after the decision. Adapter tuning freezes the
  transformer blocks' own weights (not their adapters) and drops their gradients of this
  step already; full tuning unfreezes them, which takes effect from the next step (they were
  not in this step's graph). Everything else (patch embeddings, stage norms, decode head,
  adapters, mask token, neck) trains in both modes. The detector's values and threshold run
  on over all domains; each domain visit unfreezes and starts in full tuning;
- one backward, Adam steps the parameters that got a gradient (frozen ones keep their Adam
  state and resume it when unfrozen within the visit); a fresh Adam at each domain visit;
- the teacher takes ``alpha * t + (1 - alpha) * s`` of every parameter, frozen or not.

With ``aug_test=True`` (the reference's ``--aug-test``, not its README command), the label
and the prediction come from CoTTA's rule over 14 views of the original image, each resized to
exactly ``scale`` times the input size (not keeping the aspect ratio, as its pipeline does),
through slide inference, flipped back, averaged at the original size: where the anchor (a frozen
copy of the model as configured, adapters included) is more confident than ``confidence``
(0.69) on the plain view, the teacher's plain-view label, elsewhere its 14-view average. The
student still trains on the plain input. The pipeline must keep the original image
(``configs/acdc/segformer-b5_hybrid-tta_aug-test.py``).

The model stays in eval mode (BatchNorm on its running statistics, no dropout). The
model's backbone must be a :class:`~stag_seg.models.HybridMixVisionTransformer`
(``HybridTTABackbone``, ``configs/_base_/tta/hybrid-tta.py``). The masked forward must see the
whole image (whole inference, or slide inference with one window), at batch size 1, and the
input's height and width must be multiples of ``mask_patch_size`` (the reference resizes ACDC to
960 x 544 without keeping the aspect ratio).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..dist import rank_mean
from ..registry import TTA_METHODS
from ..structures import StepContext, TapOutput
from .base import BaseTTAMethod, MethodLoss, at_positions
from .teachers import ema_update, frozen_copy, label_cross_entropy
from .views import DEFAULT_SCALES, ScaleFlipViews, inference_probs

__all__ = ['HybridTTA', 'ShiftDetector', 'block_mask']


class ShiftDetector:
    """Hybrid-TTA's dynamic domain-shift detector (``loss_seg_with_wma`` of the reference).

    Args:
        window (int): How many of the latest values are averaged. Defaults to 10.
        margin (float): Adapter tuning while the mean is below ``(1 + margin) * threshold``.
            Defaults to 0.1.
        alpha (float): The threshold's EMA coefficient. Defaults to 0.999.
        threshold (float): The threshold's start. Defaults to 0.0.
    """

    def __init__(self, window: int = 10, margin: float = 0.1, alpha: float = 0.999,
                 threshold: float = 0.0) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f'ShiftDetector.window must be an int >= 1, got {window!r}')
        if not 0 <= alpha <= 1:
            raise ValueError(f'ShiftDetector.alpha must be in [0, 1], got {alpha}')
        self.window, self.margin, self.alpha, self.start = window, margin, alpha, threshold
        self.reset()

    def reset(self) -> None:
        self.values: list[float] = []
        self.threshold = self.start
        self.frozen = False

    def observe(self, value: float) -> bool:
        """Take this step's loss; return whether it calls for adapter tuning."""
        self.values.append(value)
        del self.values[:-self.window]  # only the last ``window`` are ever read
        efficient = False
        if len(self.values) >= self.window:
            efficient = bool(np.mean(self.values[-self.window:])
                             < (1 + self.margin) * self.threshold)
        self.threshold = self.threshold * self.alpha + value * (1 - self.alpha)
        return efficient

    def state_dict(self) -> dict:
        return dict(values=list(self.values), threshold=self.threshold, frozen=self.frozen)

    def load_state_dict(self, state: dict) -> None:
        self.values = list(state['values'])
        self.threshold = state['threshold']
        self.frozen = state['frozen']


def block_mask(rng: np.random.RandomState, size: tuple[int, int], mask_patch_size: int,
               model_patch_size: int, ratio: float) -> np.ndarray:
    """SimMIM's mask (the reference's ``MaskGenerator``): ``ceil(n * ratio)`` of the ``n``
    squares of ``mask_patch_size`` pixels, by ``rng.permutation(n)``, on the token grid of
    stride ``model_patch_size``; (1, H / model_patch_size, W / model_patch_size) int64, 1 where
    masked."""
    height, width = size
    if height % mask_patch_size or width % mask_patch_size:
        raise ValueError(f'the masked input must be a multiple of mask_patch_size='
                         f'{mask_patch_size} in height and width, got {height}x{width} (the '
                         'reference resizes ACDC to 960x544, not 960x540)')
    if mask_patch_size % model_patch_size:
        raise ValueError(f'mask_patch_size={mask_patch_size} must be a multiple of the first '
                         f'patch embedding stride {model_patch_size}')
    rows, cols = height // mask_patch_size, width // mask_patch_size
    count = int(np.ceil(rows * cols * ratio))
    mask = np.zeros(rows * cols, dtype=np.int64)
    mask[rng.permutation(rows * cols)[:count]] = 1
    scale = mask_patch_size // model_patch_size
    return mask.reshape(rows, cols).repeat(scale, axis=0).repeat(scale, axis=1)[None]


@TTA_METHODS.register_module()
class HybridTTA(BaseTTAMethod):
    """Mean teacher + masked reconstruction + full/adapter tuning switched by a shift detector.

    Args:
        alpha (float): EMA coefficient of the teacher. Defaults to 0.999.
        mask_ratio (float): Masked share of the squares. Defaults to 0.6.
        mask_patch_size (int): Side of a masked square, in pixels. Defaults to 32.
        recon_weight (float): Weight of the reconstruction loss. Defaults to 0.3.
        window (int): The detector's window. Defaults to 10.
        margin (float): The detector's margin over its threshold. Defaults to 0.1.
        detector_alpha (float): The EMA coefficient of its threshold. Defaults to 0.999.
        threshold (float): Its threshold's start. Defaults to 0.0 (the released config; the
            code's default is 0.1).
        dynamic (bool): Switch modes with the detector; False trains in full tuning throughout
            (an ablation, not the method). Defaults to True.
        seed (int): Seed of the masks' ``RandomState``. Defaults to 42.
        aug_test (bool): Label with the 14-view teacher and the anchor's gate (the reference's
            ``--aug-test`` variant). Defaults to False (the released command's plain variant).
        scales (Sequence[float]): The views' scales with ``aug_test``; must hold 1.0.
            Defaults to 0.5 ... 2.0.
        flip (bool): Add flipped views with ``aug_test``. Defaults to True.
        confidence (float): The anchor's gate with ``aug_test``. Defaults to 0.69.
        views_per_forward (int, optional): The views' memory ceiling (CoTTA's). Defaults to
            None (1, the reference's loop).
        **kwargs: ``optim_wrapper``, ``regularizers``, ``reset_every``.
    """

    adapts = 'parameters of a HybridMixVisionTransformer backbone'

    def __init__(self,
                 alpha: float = 0.999,
                 mask_ratio: float = 0.6,
                 mask_patch_size: int = 32,
                 recon_weight: float = 0.3,
                 window: int = 10,
                 margin: float = 0.1,
                 detector_alpha: float = 0.999,
                 threshold: float = 0.0,
                 dynamic: bool = True,
                 seed: int = 42,
                 aug_test: bool = False,
                 scales: tuple[float, ...] = DEFAULT_SCALES,
                 flip: bool = True,
                 confidence: float = 0.69,
                 views_per_forward: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= alpha <= 1:
            raise ValueError(f'HybridTTA.alpha must be in [0, 1], got {alpha}')
        if not 0 < mask_ratio <= 1:
            raise ValueError(f'HybridTTA.mask_ratio must be in (0, 1], got {mask_ratio}')
        if not isinstance(mask_patch_size, int) or mask_patch_size < 1:
            raise ValueError(f'HybridTTA.mask_patch_size must be an int >= 1, got '
                             f'{mask_patch_size!r}')
        self.alpha, self.mask_ratio, self.mask_patch_size = alpha, mask_ratio, mask_patch_size
        self.recon_weight, self.dynamic, self.seed = recon_weight, dynamic, seed
        self.detector = ShiftDetector(window, margin, detector_alpha, threshold)
        self.aug_test, self.confidence = aug_test, confidence
        self.teacher_views = ScaleFlipViews(scales, flip, 'original', views_per_forward,
                                            owner=self.name, keep_ratio=False)
        if aug_test and self.teacher_views.index(1.0) is None:
            raise ValueError(f'HybridTTA.scales must hold 1.0 (the plain view the anchor gates '
                             f'and the student trains on), got {scales}')
        self.anchor: nn.Module | None = None
        self.rng = np.random.RandomState(seed)
        self.teacher: nn.Module | None = None
        self._blocks: list[nn.Parameter] = []

    def __repr__(self) -> str:
        return (f'HybridTTA(alpha={self.alpha}, mask_ratio={self.mask_ratio}, recon_weight='
                f'{self.recon_weight}, window={self.detector.window}'
                + ('' if self.dynamic else ', dynamic=False')
                + (f', aug_test=True, views={len(self.teacher_views)}' if self.aug_test else '')
                + f', regularizers={self.regularizers})')

    # ------------------------------------------------------------------ configure
    @staticmethod
    def backbone_of(model: nn.Module) -> nn.Module:
        """The model's Hybrid-TTA backbone, or a clear error."""
        backbone = getattr(model, 'backbone', None)
        parts = ('arm_mask', 'recon_neck', 'mask_token', 'blocks')
        if not all(hasattr(backbone, a) for a in parts):
            raise ValueError(
                'HybridTTA needs adapters, a mask token and a reconstruction neck on the '
                "model's backbone: wrap the backbone config as backbone=dict(_delete_=True, "
                "type='HybridTTABackbone', backbone=<the MiT backbone>) "
                f'(configs/_base_/tta/hybrid-tta.py shows it); got {type(backbone).__name__}')
        return backbone

    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        self.backbone_of(model)
        return []

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        # the reference's optimiser holds every parameter (all require grad after each visit's
        # reset), the mask token and the adapters' scales included
        names, params = zip(*model.named_parameters())
        return list(params), list(names)

    def setup(self, model: nn.Module) -> None:
        backbone = self.backbone_of(model)
        self.teacher = frozen_copy(model, self)
        self.anchor = frozen_copy(model, self) if self.aug_test else None
        # what adapter tuning freezes: the blocks' own weights, not their adapters
        self._blocks = []
        for block in backbone.blocks():
            adapter = getattr(block, 'adapter', None)
            own = set() if adapter is None else {id(p) for p in adapter.parameters()}
            self._blocks += [p for p in block.parameters() if id(p) not in own]

    def apply_modes(self) -> None:
        super().apply_modes()
        if self.detector.frozen:
            self._set_frozen(True)

    def _set_frozen(self, frozen: bool) -> None:
        for param in self._blocks:
            param.requires_grad_(not frozen)
            if frozen:
                param.grad = None  # this step's gradient is dropped too

    def release(self) -> None:
        if self.model is not None:  # no armed mask or kept graph outlives the method
            backbone = self.backbone_of(self.model)
            backbone.arm_mask(None)
        super().release()

    def begin_domain(self, round_idx: int, domain_index: int) -> None:
        """A new visit: full tuning (the detector's values and threshold run on) and a fresh
        Adam, as the reference resets its controller and builds a new optimiser."""
        if not self.configured:
            return
        self._set_frozen(False)
        self.detector.frozen = False
        self.reset_optimizer()

    def reset_state(self) -> None:
        if self.teacher is not None:
            self.teacher.load_state_dict(self.model.state_dict())
        self.detector.reset()
        if self._blocks:
            self._set_frozen(False)
        self.rng = np.random.RandomState(self.seed)

    def extra_state(self) -> dict:
        kind, keys, pos, has_gauss, cached = self.rng.get_state()
        return dict(teacher=self.teacher.state_dict() if self.teacher is not None else None,
                    detector=self.detector.state_dict(),
                    rng=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=pos,
                             has_gauss=has_gauss, cached=cached))

    def load_extra_state(self, state: dict) -> None:
        if state['teacher'] is not None:
            self.teacher.load_state_dict(state['teacher'])
        self.detector.load_state_dict(state['detector'])
        rng = state['rng']
        self.rng.set_state((rng['kind'], rng['keys'].numpy().astype(np.uint32), rng['pos'],
                            rng['has_gauss'], rng['cached']))
        self._set_frozen(self.detector.frozen)

    # ------------------------------------------------------------------ one step
    def prepare(self, ctx: StepContext) -> None:
        """The teacher's label at the original size, then the mask the student's forward
        uses."""
        if ctx.metas is None:
            raise ValueError('HybridTTA masks and reconstructs a segmentor\'s input; got a '
                             'classifier')
        if ctx.inputs.size(0) != 1:
            raise ValueError(f'HybridTTA draws one mask per image, as its reference runs at '
                             f'batch size 1; got a batch of {ctx.inputs.size(0)}')
        with torch.no_grad():
            probs = (self._gated_views(ctx) if self.aug_test
                     else inference_probs(self.teacher, ctx, ctx.original_size()))
            ctx.state['hybrid_label'] = probs.argmax(1)
            ctx.state['hybrid_logprobs'] = probs.clamp_min(1e-12).log()
        backbone = self.backbone_of(self.model)
        stride = backbone.layers[0][0].projection.stride[0]
        mask = block_mask(self.rng, tuple(ctx.inputs.shape[2:]), self.mask_patch_size, stride,
                          self.mask_ratio)
        ctx.state['hybrid_mask'] = torch.from_numpy(mask).to(ctx.inputs.device)
        backbone.arm_mask(ctx.state['hybrid_mask'])

    def _gated_views(self, ctx: StepContext) -> Tensor:
        """``aug_test``: the teacher's plain-view probabilities where the anchor's plain-view
        confidence exceeds ``confidence``, its 14-view average elsewhere."""
        views = self.teacher_views
        plain = views.index(1.0)
        teacher = views.run(self.teacher, ctx, keep=(plain, ))
        anchor = views.run(self.anchor, ctx, views=[views.all[plain]], average=False,
                           keep=(plain, )).views[plain]
        confident = anchor.amax(1, keepdim=True) > self.confidence
        ctx.state['hybrid_confident'] = float(confident.float().mean())
        return torch.where(confident, teacher.views[plain], teacher.average)

    def prediction(self, out: TapOutput, ctx: StepContext) -> Tensor:
        """The teacher's prediction of :meth:`prepare`, log-probabilities at the original
        size."""
        return ctx.state['hybrid_logprobs']

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        backbone = self.backbone_of(self.model)
        feats, backbone.masked_features = backbone.masked_features, None
        if feats is None:
            raise RuntimeError('HybridTTA: the main forward did not run the masked backbone')
        ce = label_cross_entropy(out, ctx, ctx.state['hybrid_label'])
        loss_ce = ce.mean()
        recon_loss = self.recon_loss(backbone.recon_neck(feats), ctx.inputs,
                                     ctx.state['hybrid_mask'],
                                     backbone.layers[0][0].projection.stride[0])
        loss = loss_ce + recon_loss * self.recon_weight
        # the detector decides between the forward and the backward, as the reference's; with
        # several processes it reads the mean over the ranks (the reference's _parse_losses
        # reduces its log values), so that every rank switches together
        value, _ = rank_mean(float(loss_ce.detach()), True)
        efficient = self.detector.observe(value) if self.dynamic else False
        if efficient != self.detector.frozen:
            self._set_frozen(efficient)
            self.detector.frozen = efficient
        stats = dict(hybrid_ce=float(loss_ce.detach()), hybrid_recon=float(recon_loss.detach()),
                     hybrid_adapter_tuning=float(self.detector.frozen),
                     hybrid_threshold=float(self.detector.threshold))
        if 'hybrid_confident' in ctx.state:
            stats['hybrid_confident'] = ctx.state['hybrid_confident']
        return MethodLoss(loss, stats=stats,
            reweight=lambda m: (ce * at_positions(m, ce)).mean()
            + recon_loss * self.recon_weight)

    @staticmethod
    def recon_loss(recon: Tensor, target: Tensor, mask: Tensor, stride: int) -> Tensor:
        """L1 between the reconstruction and the normalised input over the masked pixels,
        divided by their count and by 3 (``PixelReconstructionLoss('L1', channel=3)``)."""
        pixels = mask.repeat_interleave(stride, 1).repeat_interleave(stride, 2)[:, None]
        return ((recon - target).abs() * pixels).sum() / pixels.sum() / 3

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        backbone = self.backbone_of(self.model)
        backbone.masked_features = None
        ema_update(self.teacher, self.model, self.alpha)
