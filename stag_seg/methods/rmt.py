"""RMT: the robust mean teacher.

Paper: Döbler, Marsden and Yang, "Robust Mean Teacher for Continual and Gradual Test-Time
Adaptation", CVPR 2023 (https://arxiv.org/abs/2211.13081). Reference:
mariodoebler/test-time-adaptation, ``classification/methods/rmt.py`` and its ``base.py``.

Per step, with the student's features and logits ``f, z`` of the batch, ``fa, za`` of a strong
view of it (the CoTTA transform) and the teacher's logits ``t`` (BatchNorm on test-batch
statistics in both models): ``lambda_ce_trg`` times the self-training term
``mean 0.5 SCE(z, t) + 0.5 SCE(za, t)`` (symmetric cross entropy, Eq. 3-4), plus
``lambda_cont`` times the contrastive term (the nearest source prototype of ``f`` by cosine,
``f`` and ``fa`` through a trainable projector in a supervised-contrastive loss, Eq. 5), plus
``lambda_ce_src`` times the cross entropy of a labelled source batch (source replay; 0 is the
source-free variant). The teacher is an EMA of the student (every parameter) after the step;
the prediction is ``z + t``, both from before the update. Trained: every tensor named weight or
bias, and the projector (a second parameter group, at the first group's lr).

Before the stream: the class prototypes (mean source feature per class, over batches until more
than ``prototype_samples`` images are seen, with the configured model), the projector, and a
warm-up of ``warmup_samples // source batch size`` steps on source images without labels (lr
ramped linearly, SCE to the teacher, EMA each step). ``reset()`` returns to the warmed-up state,
the optimizer's included. **Source data is always needed**: the prototypes come from it in the
source-free variant too, as in the reference.

Where this differs from the reference, and why:

- its source loader shuffles with torch's global generator and batches as the test stream (the
  sliding window's size at batch size 1); here the config's loader (a new sampler epoch each
  pass) with its own ``batch_size``;
- views are drawn from the method's generator (``seed``) in the reference's order; the projector
  is initialised by PyTorch's default from a generator seeded with ``seed``;
- the reference trains the tensors named weight or bias, which on torchvision's ViT leaves out
  the attention input projections (stored under other names): ``attention_inputs=False`` does
  that here (the ViT-B/16 configs);
- the reference caches prototypes and the warmed-up model in files per data set and
  architecture; here they are computed when the method attaches;
- warm-up and updates go through the step's ``update``; the prototypes' sums are taken over
  ranks. For classifiers only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..dist import rank_sum
from ..registry import TTA_METHODS
from ..structures import StepContext, TapOutput
from .augment import apply_view, draw_reference_view, pixel_statistics, to_inputs, to_pixels
from .base import BaseTTAMethod, MethodLoss, at_positions
from .losses import supervised_contrastive, symmetric_cross_entropy
from .params import collect_weights_and_biases, use_batch_statistics
from .source_data import SourceStream, build_source_loader, inputs_and_labels
from .step import warm_up
from .teachers import ema_update, frozen_copy

__all__ = ['RMT']

OWNER = 'RMT.source_data'


@TTA_METHODS.register_module()
class RMT(BaseTTAMethod):
    """Mean teacher with symmetric cross entropy, contrastive source prototypes and source
    replay.

    Args:
        source_data (dict): ``dict(dataloader=dict(...))``, labelled source images (required:
            the prototypes come from them).
        teacher_momentum (float): EMA momentum of the teacher. Defaults to 0.999.
        temperature (float): Of the contrastive loss. Defaults to 0.1.
        projection_dim (int): Width of the projector. Defaults to 128.
        lambda_ce_src (float): Weight of the source replay. Defaults to 1.0.
        lambda_ce_trg (float): Weight of the self-training term. Defaults to 1.0.
        lambda_cont (float): Weight of the contrastive term. Defaults to 1.0.
        warmup_samples (int): Source images of the warm-up; 0 skips it. Defaults to 50000.
        prototype_samples (int): See the module docstring. Defaults to 100000.
        attention_inputs (bool): Train the attention input projections too. Defaults to True.
        seed (int, optional): Seed of the views and the projector; None takes torch's global
            seed (MMEngine's ``randomness.seed``). Defaults to None.
        **kwargs: ``optim_wrapper``, ``regularizers`` (RMT trains the classifier: STAG with
            ``anchors='live'``), ``reset_every``.
    """

    adapts = 'tensors named weight or bias'

    def __init__(self,
                 source_data: dict | None = None,
                 teacher_momentum: float = 0.999,
                 temperature: float = 0.1,
                 projection_dim: int = 128,
                 lambda_ce_src: float = 1.0,
                 lambda_ce_trg: float = 1.0,
                 lambda_cont: float = 1.0,
                 warmup_samples: int = 50000,
                 prototype_samples: int = 100000,
                 attention_inputs: bool = True,
                 seed: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if source_data is None or 'dataloader' not in source_data:
            raise ValueError(
                "RMT needs labelled source images, source_data=dict(dataloader=dict(...)): its "
                'contrastive term pulls test features towards class prototypes of the source '
                'data, in the source-free variant too (lambda_ce_src=0, warmup_samples=0)')
        if not 0 <= teacher_momentum <= 1:
            raise ValueError(f'RMT.teacher_momentum must be in [0, 1], got {teacher_momentum}')
        if temperature <= 0 or projection_dim < 1 or warmup_samples < 0 \
                or prototype_samples < 1:
            raise ValueError('RMT: temperature must be > 0, projection_dim and prototype_samples '
                             f'>= 1, warmup_samples >= 0; got {temperature}, {projection_dim}, '
                             f'{prototype_samples}, {warmup_samples}')
        self.source_data = source_data
        self.teacher_momentum, self.temperature = teacher_momentum, temperature
        self.projection_dim = projection_dim
        self.lambdas = dict(src=lambda_ce_src, trg=lambda_ce_trg, cont=lambda_cont)
        self.warmup_samples, self.prototype_samples = warmup_samples, prototype_samples
        self.attention_inputs = attention_inputs
        self.seed = seed
        self.generator = torch.Generator()
        self.teacher: nn.Module | None = None
        self.projector: nn.Module | None = None
        self.prototypes: Tensor | None = None  # (C, D)
        self.source: SourceStream | None = None
        self._warm: dict = {}

    def __repr__(self) -> str:
        return (f"RMT(lambda_ce_src={self.lambdas['src']}, warmup_samples={self.warmup_samples}, "
                f'regularizers={self.regularizers})')

    # ------------------------------------------------------------------ configure
    def configure_model(self, model: nn.Module) -> list[nn.Module]:
        return use_batch_statistics(model)

    def collect_params(self, model: nn.Module) -> tuple[list[nn.Parameter], list[str]]:
        return collect_weights_and_biases(model, self.attention_inputs)

    def setup(self, model: nn.Module) -> None:
        seed = torch.initial_seed() if self.seed is None else self.seed
        self.generator.manual_seed(seed)
        self._pixels = pixel_statistics(model)
        self.teacher = frozen_copy(model, self, batch_stats=True)
        self.source = SourceStream(build_source_loader(self.source_data, OWNER), OWNER)
        self.prototypes = self._source_prototypes(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            width = self.projection_dim
            projector = nn.Sequential(nn.Linear(self.prototypes.size(1), width), nn.ReLU(),
                                      nn.Linear(width, width))
        self.projector = projector.to(self.prototypes)
        self.optim_wrapper.optimizer.add_param_group(dict(
            params=list(self.projector.parameters()),
            lr=self.optim_wrapper.param_groups[0]['lr']))
        steps = self.warmup_samples // self.source.loader.batch_size
        if steps > 0:
            warm_up(self, steps, self._warmup_loss, self._ema)
        self.snapshot_source()  # reset() returns to the warmed-up state, as the reference
        self._warm = dict(teacher=_clone(self.teacher), projector=_clone(self.projector))

    def reset_state(self) -> None:
        if self._warm:
            self.teacher.load_state_dict(self._warm['teacher'])
            self.projector.load_state_dict(self._warm['projector'])

    def extra_state(self) -> dict:
        if self.teacher is None:
            return {}
        return dict(teacher=self.teacher.state_dict(), projector=self.projector.state_dict(),
                    prototypes=self.prototypes, generator=self.generator.get_state(),
                    source_position=self.source.position())

    def load_extra_state(self, state: dict) -> None:
        if state:
            self.teacher.load_state_dict(state['teacher'])
            self.projector.load_state_dict(state['projector'])
            self.prototypes = state['prototypes'].to(self.prototypes)
            self.generator.set_state(state['generator'])
            self.source.seek(state['source_position'])

    @torch.no_grad()
    def _source_prototypes(self, model: nn.Module) -> Tensor:
        """(C, D) the mean classifier input of each class's source images."""
        if self.tap is None:
            raise RuntimeError('RMT computes its prototypes through the classifier tap: attach '
                               'it through a TTA model or TTAHook')
        sums = counts = None
        seen = 0
        for batch in self.source.loader:
            inputs, labels = inputs_and_labels(model, batch, OWNER)
            with self.tap.capture():
                self.logits_fn(model, inputs)
            feats = self.tap.output().features
            self.tap.clear()
            if sums is None:
                sums = feats.new_zeros(self.tap.weight.size(0), feats.size(1))
                counts = feats.new_zeros(self.tap.weight.size(0))
            sums.index_add_(0, labels, feats)
            counts += torch.bincount(labels, minlength=counts.numel()).to(counts)
            seen += labels.numel()
            if seen > self.prototype_samples:
                break
        if sums is None:
            raise ValueError(f'{OWNER} yielded no images: its dataset is empty')
        sums, counts = rank_sum(sums), rank_sum(counts)
        missing = (counts == 0).nonzero().flatten().tolist()
        if missing:
            raise ValueError(f'{OWNER} has no image of the classes {missing[:10]}, which then '
                             'have no prototype; give a source set that covers every class')
        return sums / counts[:, None]

    # ------------------------------------------------------------------ steps
    def strong_view(self, inputs: Tensor) -> Tensor:
        """The reference's strong augmentation of preprocessed inputs, one draw for the batch."""
        pixels = to_pixels(inputs, self._pixels)
        view = apply_view(pixels, draw_reference_view(self.generator, tuple(pixels.shape)))
        return to_inputs(view, self._pixels)

    def _warmup_loss(self, step: int) -> Tensor:
        inputs, _ = inputs_and_labels(self.model, self.source.next(), OWNER)
        student = self.logits_fn(self.model, inputs)
        with torch.no_grad():
            teacher = self.logits_fn(self.teacher, inputs)
        return symmetric_cross_entropy(student, teacher).mean(0)

    def _ema(self) -> None:
        ema_update(self.teacher.parameters(), self.model.parameters(), self.teacher_momentum)

    def prediction(self, out: TapOutput, ctx: StepContext) -> Tensor:
        """Student plus teacher logits, both before the update."""
        if out.logits.dim() != 2:
            raise ValueError('RMT is defined for classifiers (class prototypes of image '
                             f'features), got logits {tuple(out.logits.shape)}')
        ctx.state['rmt_teacher'] = ctx.logits_fn(self.teacher, ctx.inputs)
        return out.logits.detach() + ctx.state['rmt_teacher']

    def loss(self, out: TapOutput, ctx: StepContext) -> MethodLoss:
        teacher = ctx.state['rmt_teacher']
        aug = ctx.forward(self.strong_view(ctx.inputs))
        with torch.no_grad():  # each test feature's nearest source prototype, by cosine
            nearest = F.cosine_similarity(self.prototypes[:, None], out.features.detach()[None],
                                          dim=-1).argmax(0)
        views = torch.stack([self.prototypes[nearest], out.features, aug.features], dim=1)
        contrastive = supervised_contrastive(views, self.projector, self.temperature)
        terms = (0.5 * symmetric_cross_entropy(out.logits, teacher)
                 + 0.5 * symmetric_cross_entropy(aug.logits, teacher))
        self_training = terms.mean(0)
        stats = dict(rmt_sce=float(self_training.detach()),
                     rmt_contrastive=float(contrastive.detach()))
        replay = None
        if self.lambdas['src'] > 0:
            inputs, labels = inputs_and_labels(self.model, self.source.next(), OWNER)
            replay = F.cross_entropy(ctx.forward(inputs).logits, labels)
            stats['rmt_source_ce'] = float(replay.detach())

        def total(self_training: Tensor) -> Tensor:
            loss = self.lambdas['trg'] * self_training + self.lambdas['cont'] * contrastive
            return loss if replay is None else loss + self.lambdas['src'] * replay

        # a regularizer's reweighting reaches the test samples' self-training terms (those
        # that trust the teacher's pseudo-label); the contrastive and replay terms stay
        return MethodLoss(total(self_training), stats=stats,
                          reweight=lambda m: total((terms * at_positions(m, terms)).mean(0)))

    def after_step(self, out: TapOutput | None, ctx: StepContext) -> None:
        self._ema()


def _clone(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
