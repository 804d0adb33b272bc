"""``NVSegFormerHead``: the SegFormer decode head of the NVlabs release, in MMSeg 1.x.

Paper: Xie et al., "SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers", NeurIPS 2021. Layout of https://github.com/NVlabs/SegFormer (and of the CoTTA
release, whose Cityscapes->ACDC table used its ``segformer.b5.1024x1024.city.160k.pth``).

It differs from MMSeg 1.x's ``SegformerHead``: each level is projected by an ``nn.Linear``
(no norm, no activation) to ``channels`` (768 for B5), the four maps are upsampled to 1/4 and
concatenated in the order c4, c3, c2, c1, then fused by a 1x1 ``ConvModule`` (BN + ReLU). The
final classifier, ``linear_pred`` in the release, is this head's ``conv_seg``, so the toolkit's
tap works unchanged (``tools/convert_nvlabs_segformer.py`` renames it).
"""
from __future__ import annotations

import torch
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor, nn

__all__ = ['LevelProjection', 'NVSegFormerHead']


class LevelProjection(nn.Module):
    """A per-position ``nn.Linear`` on a (N, C, H, W) map (the release's ``MLP``)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        return self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(n, -1, h, w)


@MODELS.register_module()
class NVSegFormerHead(BaseDecodeHead):
    """SegFormer's all-MLP head as NVlabs released it.

    Args:
        interpolate_mode (str): Upsampling of the coarser maps. Defaults to ``'bilinear'``.
        **kwargs: ``BaseDecodeHead`` arguments; ``in_channels`` lists the four levels (c1..c4,
            at 1/4 ... 1/32) and ``channels`` is the embedding width (768 for B5).
    """

    def __init__(self, interpolate_mode: str = 'bilinear', **kwargs) -> None:
        super().__init__(input_transform='multiple_select', **kwargs)
        if len(self.in_channels) != 4:
            raise ValueError(f'NVSegFormerHead needs 4 input levels, got in_channels='
                             f'{self.in_channels}')
        self.interpolate_mode = interpolate_mode
        c1, c2, c3, c4 = self.in_channels
        self.linear_c1 = LevelProjection(c1, self.channels)
        self.linear_c2 = LevelProjection(c2, self.channels)
        self.linear_c3 = LevelProjection(c3, self.channels)
        self.linear_c4 = LevelProjection(c4, self.channels)
        self.linear_fuse = ConvModule(4 * self.channels, self.channels, 1,
                                      norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        # four maps at 1/4, 1/8, 1/16, 1/32; everything is fused at 1/4
        c1, c2, c3, c4 = self._transform_inputs(inputs)
        size = c1.shape[2:]
        maps = [resize(proj(x), size=size, mode=self.interpolate_mode,
                       align_corners=self.align_corners)
                for proj, x in ((self.linear_c4, c4), (self.linear_c3, c3), (self.linear_c2, c2))]
        fused = self.linear_fuse(torch.cat([*maps, self.linear_c1(c1)], dim=1))
        return self.cls_seg(fused)
