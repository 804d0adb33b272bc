"""Hybrid-TTA's additions to a MiT backbone: parallel adapters, a mask token and a SimMIM
reconstruction neck.

Paper: Park et al., "Hybrid-TTA: Continual Test-time Adaptation via Dynamic Domain Shift
Detection", ICCV 2025. Reference: https://github.com/hhhyyeee/Hybrid-TTA (the backbone
``mit_b5_cvp_simmim`` of ``mmseg/models/backbones/simmim.py`` and ``mix_transformer_cvp.py``,
the adapter of ``mmseg/models/pet/adapter.py``, the neck ``SimMIMSegFormerDecoder`` of
``mmseg/models/necks/simmim_neck.py``).

A config gives its MiT backbone these parts by wrapping the backbone's config::

    model = dict(backbone=dict(
        _delete_=True, type='HybridTTABackbone', backbone={{_base_.model.backbone}},
        adapter_hidden=5, recon_channels=768, init_seed=42))

The backbone is then a :class:`HybridMixVisionTransformer` with the wrapped config's arguments
(its checkpoint keys unchanged; an ``NVMixVisionTransformer`` keeps its NVlabs norms). It gains:

- ``layers.{i}.1.{j}.adapter``: a :class:`ParallelAdapter` in every transformer block, beside
  the block's MixFFN on ``norm2``'s output: ``x + ffn(y) + adapter(y)``, ``y = norm2(x)``;
- ``mask_token`` (1, 1, C1), zero: with a mask armed (:meth:`HybridMixVisionTransformer.arm_mask`),
  the next forward replaces the masked stage-1 tokens by it, after the first patch embedding
  and its norm;
- ``recon_neck``: a :class:`ReconstructionNeck` that maps the four feature maps back to the
  input image (the Hybrid-TTA method trains it with its masked L1 loss). It lives on the
  backbone (``backbone.recon_neck.*``; ``recon_neck.*`` in the reference) so that the method
  adapts it, and its teacher averages it, like every other parameter.

None of these is in a source checkpoint: they start from their initial values, as in the
reference, drawn from a generator seeded by ``init_seed`` (the reference draws them from the
global seed 42 in its build order, which a port cannot repeat):

- adapters: both linear layers truncated normal (std 0.02, bounds +-2) with zero biases, the
  scale 1.0. The reference's adapter zeroes its up-projection, but the backbone-wide
  ``_init_weights`` re-initialises every ``nn.Linear`` after the adapters are attached, so the
  released code starts from non-zero adapters (the model at t=0 is not the source model);
  ``adapter_init='zero'`` keeps the adapter's own zero up-projection instead;
- the neck: PyTorch's default initialisation of its linear layers and output convolution,
  mmcv's ``ConvModule`` initialisation of its fusion (Kaiming normal, BN weight 1, bias 0).
"""
from __future__ import annotations

import torch
from mmcv.cnn import ConvModule
from mmseg.models.backbones import MixVisionTransformer
from mmseg.models.utils import nchw_to_nlc, nlc_to_nchw, resize
from mmseg.registry import MODELS
from torch import Tensor, nn

from .nv_mit import NVMixVisionTransformer
from .nv_segformer_head import LevelProjection

__all__ = ['HybridMixVisionTransformer', 'HybridTTABackbone', 'ParallelAdapter',
           'ReconstructionNeck']

ADAPTER_INITS = ('reference', 'zero')


class Scaler(nn.Module):
    """Multiplies its input by a learnable scalar ``scale`` (initially 1.0)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class ParallelAdapter(nn.Module):
    """``layer``: Linear(dim -> hidden), GELU, Linear(hidden -> dim), a learnable scale; the
    reference's ``Adapter`` with ``down_sample=5`` (an int: the hidden width, at every stage)."""

    def __init__(self, dim: int, hidden: int = 5) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f'ParallelAdapter.hidden must be >= 1, got {hidden}')
        self.layer = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim),
                                   Scaler())

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class ReconstructionNeck(nn.Module):
    """SimMIM's pixel decoder on SegFormer's all-MLP fusion (the reference's
    ``SimMIMSegFormerDecoder``): each level projected per position to ``channels``, the coarser
    three resized (bilinear) to the first's size, concatenated c4, c3, c2, c1, fused by a 1x1
    ``ConvModule`` (BN, ReLU), then a 1x1 convolution to ``3 * stride**2`` channels and
    ``PixelShuffle(stride)`` back to the input size."""

    def __init__(self, in_channels: list[int], channels: int = 768, encoder_stride: int = 4,
                 norm_cfg: dict | None = None) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f'ReconstructionNeck needs 4 input levels, got {in_channels}')
        c1, c2, c3, c4 = in_channels
        self.linear_c1 = LevelProjection(c1, channels)
        self.linear_c2 = LevelProjection(c2, channels)
        self.linear_c3 = LevelProjection(c3, channels)
        self.linear_c4 = LevelProjection(c4, channels)
        self.linear_fuse = ConvModule(4 * channels, channels, 1,
                                      norm_cfg=norm_cfg or dict(type='BN', requires_grad=True))
        self.decoder = nn.Sequential(nn.Conv2d(channels, encoder_stride ** 2 * 3, 1),
                                     nn.PixelShuffle(encoder_stride))

    def forward(self, feats: list[Tensor]) -> Tensor:
        c1, c2, c3, c4 = feats
        size = c1.shape[2:]
        maps = [resize(proj(x), size=size, mode='bilinear', align_corners=False)
                for proj, x in ((self.linear_c4, c4), (self.linear_c3, c3), (self.linear_c2, c2))]
        return self.decoder(self.linear_fuse(torch.cat([*maps, self.linear_c1(c1)], dim=1)))


@MODELS.register_module()
class HybridMixVisionTransformer(NVMixVisionTransformer):
    """A MiT with Hybrid-TTA's adapters, mask token and reconstruction neck.

    Args:
        adapter_hidden (int): Hidden width of every adapter. Defaults to 5.
        adapter_stages (tuple[int]): Stages whose blocks get adapters. Defaults to all four.
        adapter_init (str): ``'reference'`` (both linear layers truncated normal, std 0.02:
            what the released code starts from) or ``'zero'`` (a zero up-projection: the
            adapter's own intent, the source model at t=0). Defaults to ``'reference'``.
        recon_channels (int): Width of the reconstruction neck. Defaults to 768.
        recon_norm_cfg (dict, optional): Its fusion's norm. Defaults to BN.
        init_seed (int): Seed of the added parts' initial values. Defaults to 42.
        nv_eps (float, optional): The eps of the patch-embedding and spatial-reduction norms
            (``NVMixVisionTransformer``); None keeps the ``norm_cfg`` eps everywhere (MMSeg's
            ``MixVisionTransformer``). Defaults to None.
        **kwargs: ``MixVisionTransformer``'s arguments.
    """

    def __init__(self,
                 adapter_hidden: int = 5,
                 adapter_stages: tuple[int, ...] = (0, 1, 2, 3),
                 adapter_init: str = 'reference',
                 recon_channels: int = 768,
                 recon_norm_cfg: dict | None = None,
                 init_seed: int = 42,
                 nv_eps: float | None = None,
                 **kwargs) -> None:
        if nv_eps is None:
            nv_eps = kwargs.get('norm_cfg', dict(eps=1e-6)).get('eps', 1e-5)
        super().__init__(nv_eps=nv_eps, **kwargs)
        if adapter_init not in ADAPTER_INITS:
            raise ValueError(f'HybridMixVisionTransformer.adapter_init must be one of '
                             f'{ADAPTER_INITS}, got {adapter_init!r}')
        bad = [s for s in adapter_stages if not 0 <= s < len(self.layers)]
        if bad:
            raise ValueError(f'HybridMixVisionTransformer.adapter_stages: no stage {bad[0]} '
                             f'(the model has {len(self.layers)})')
        if self.with_cp:
            raise ValueError('HybridMixVisionTransformer does not support with_cp')
        if tuple(self.out_indices) != tuple(range(len(self.layers))):
            raise ValueError('HybridMixVisionTransformer needs every stage among its outputs '
                             f'(the reconstruction neck reads all four), got out_indices='
                             f'{self.out_indices}')
        self.adapter_hidden, self.adapter_stages = adapter_hidden, tuple(adapter_stages)
        self.adapter_init, self.init_seed = adapter_init, init_seed
        widths = [layer[0].projection.out_channels for layer in self.layers]
        for stage in self.adapter_stages:
            for block in self.layers[stage][1]:
                block.adapter = ParallelAdapter(widths[stage], adapter_hidden)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, widths[0]))
        self.recon_neck = ReconstructionNeck(widths, recon_channels,
                                             self.layers[0][0].projection.stride[0],
                                             recon_norm_cfg)
        self._armed: Tensor | None = None
        #: The four feature maps of the last masked forward (in the graph), else None.
        self.masked_features: list[Tensor] | None = None
        self.init_added()

    def adapters(self) -> list[ParallelAdapter]:
        return [m for m in self.modules() if isinstance(m, ParallelAdapter)]

    def blocks(self) -> list[nn.Module]:
        """The transformer blocks (each stage's encoder layers), in order."""
        return [block for layer in self.layers for block in layer[1]]

    @torch.no_grad()
    def init_added(self) -> None:
        """Give the adapters, the mask token and the neck their initial values (the module
        docstring), from a generator seeded by ``init_seed``; the global random state is left
        as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.init_seed)
            for adapter in self.adapters():
                down, up, scaler = adapter.layer[0], adapter.layer[2], adapter.layer[3]
                nn.init.trunc_normal_(down.weight, std=0.02, a=-2.0, b=2.0)
                if self.adapter_init == 'reference':
                    nn.init.trunc_normal_(up.weight, std=0.02, a=-2.0, b=2.0)
                else:
                    nn.init.zeros_(up.weight)
                nn.init.zeros_(down.bias)
                nn.init.zeros_(up.bias)
                scaler.scale.fill_(1.0)
            self.mask_token.zero_()
            neck = self.recon_neck
            for proj in (neck.linear_c1, neck.linear_c2, neck.linear_c3, neck.linear_c4):
                proj.proj.reset_parameters()
            neck.linear_fuse.init_weights()
            neck.decoder[0].reset_parameters()

    def init_weights(self) -> None:
        # MixVisionTransformer's own init re-initialises every nn.Linear of the module: the
        # added parts get theirs again afterwards
        super().init_weights()
        self.init_added()

    def arm_mask(self, mask: Tensor | None) -> None:
        """Mask the next forward: ``mask`` (1 or N, h1, w1) on the stage-1 token grid, 1 where
        a token is replaced by ``mask_token``; that forward keeps its features in
        :attr:`masked_features`. None disarms it (and forgets the kept features)."""
        self._armed = mask
        self.masked_features = None

    def forward(self, x: Tensor) -> list[Tensor]:
        mask, self._armed = self._armed, None
        outs = []
        for i, layer in enumerate(self.layers):
            x, hw_shape = layer[0](x)
            if i == 0 and mask is not None:
                if tuple(mask.shape[-2:]) != tuple(hw_shape):
                    raise ValueError(
                        f'HybridMixVisionTransformer: the mask covers a {tuple(mask.shape[-2:])} '
                        f'token grid, the input gives {tuple(hw_shape)} (the masked forward '
                        'must see the whole image: use whole inference, or slide inference '
                        'whose crop covers the input)')
                w = mask.flatten(1)[..., None].to(x.dtype)
                x = x * (1 - w) + self.mask_token * w
            for block in layer[1]:
                x = _block_forward(block, x, hw_shape)
            x = layer[2](x)
            x = nlc_to_nchw(x, hw_shape)
            if i in self.out_indices:
                outs.append(x)
        if mask is not None:
            self.masked_features = outs
        return outs


def _block_forward(block: nn.Module, x: Tensor, hw_shape: tuple[int, int]) -> Tensor:
    """A MiT encoder layer, with its adapter (if any) beside the MixFFN:
    ``x + drop_path(ffn(y) + adapter(y))``, ``y = norm2(x)``, summed in the reference's order."""
    adapter = getattr(block, 'adapter', None)
    if adapter is None:
        return block(x, hw_shape)
    x = block.attn(block.norm1(x), hw_shape, identity=x)
    y = block.norm2(x)
    ffn = block.ffn
    out = nchw_to_nlc(ffn.layers(nlc_to_nchw(y, hw_shape)))
    return x + ffn.dropout_layer(out + adapter(y))


@MODELS.register_module()
def HybridTTABackbone(backbone: dict, **kwargs) -> nn.Module:  # noqa: N802
    """Build ``backbone`` (a ``MixVisionTransformer`` or ``NVMixVisionTransformer`` config) as a
    :class:`HybridMixVisionTransformer` with the same arguments and ``kwargs`` (its own:
    ``adapter_hidden``, ``adapter_stages``, ``adapter_init``, ``recon_channels``,
    ``recon_norm_cfg``, ``init_seed``)."""
    cfg = dict(backbone)
    kind = cfg.pop('type', None)
    types = {'MixVisionTransformer': MixVisionTransformer,
             'NVMixVisionTransformer': NVMixVisionTransformer}
    if kind not in types and kind not in (MixVisionTransformer, NVMixVisionTransformer):
        raise ValueError('HybridTTABackbone wraps a MixVisionTransformer or '
                         f'NVMixVisionTransformer config, got type={kind!r}')
    if kind in ('MixVisionTransformer', MixVisionTransformer):
        cfg['nv_eps'] = None  # the norm_cfg eps everywhere
    else:
        cfg.setdefault('nv_eps', 1e-5)  # NVMixVisionTransformer's default
    return HybridMixVisionTransformer(**cfg, **kwargs)
