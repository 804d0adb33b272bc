"""``SmallConvNet``: the backbone of the embedded classification benchmark (Digits-C).

Four 3x3 convolutions, each followed by a normalization layer of the config's choice (BN, GN,
or LN as one-group GN) and a ReLU, two of them with stride 2: about 61 k parameters and
5 M multiply-adds for a 32x32 image, so that every method adapts a real normalized CNN at
CPU speed. Registered in mmpretrain's MODELS.
"""
from __future__ import annotations

from typing import Sequence

from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn

__all__ = ['SmallConvNet']


@MODELS.register_module()
class SmallConvNet(BaseModule):
    """A small normalized CNN for 32x32 images.

    Args:
        in_channels (int): Input channels. Defaults to 3.
        channels (Sequence[int]): Output channels of the four convolutions.
            Defaults to ``(16, 32, 64, 64)``.
        strides (Sequence[int]): Their strides. Defaults to ``(1, 2, 2, 1)``.
        norm_cfg (dict): mmcv normalization config, e.g. ``dict(type='BN')`` or
            ``dict(type='GN', num_groups=8)``. Defaults to BN.
        init_cfg (dict | list, optional): MMEngine initialisation config.
    """

    def __init__(self,
                 in_channels: int = 3,
                 channels: Sequence[int] = (16, 32, 64, 64),
                 strides: Sequence[int] = (1, 2, 2, 1),
                 norm_cfg: dict | None = None,
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg)
        if len(channels) != len(strides):
            raise ValueError(f'SmallConvNet: {len(channels)} channels for {len(strides)} '
                             'strides')
        norm_cfg = dict(type='BN') if norm_cfg is None else norm_cfg
        layers = []
        for out_channels, stride in zip(channels, strides):
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1],
                nn.ReLU(inplace=True)
            ]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (self.layers(x), )
