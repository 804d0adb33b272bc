"""The CIFAR-C models of the continual TTA benchmarks, as mmpretrain backbones.

- :class:`CifarWideResNet`: WRN-28-10 (Zagoruyko & Komodakis, BMVC 2016) in the pre-activation
  form RobustBench ships as its CIFAR-10 ``Standard`` model, the CIFAR-10-C source model of
  Tent, CoTTA, RMT, ROID, RoTTA and mariodoebler/test-time-adaptation;
- :class:`CifarResNeXt`: ResNeXt-29 (Xie et al., CVPR 2017; cardinality 4, width 32 per group)
  trained with AugMix (Hendrycks et al., ICLR 2020), RobustBench's CIFAR-100
  ``Hendrycks2020AugMix_ResNeXt``, the CIFAR-100-C source model of the same works.

Each returns the last feature map (after the final BN and ReLU for the WRN); a
``GlobalAveragePooling`` neck and a ``LinearClsHead`` complete the classifier, as the 8 x 8
average pooling and the linear layer of the released models do. Submodules carry the names of
the released checkpoints (``block1.layer.0.conv1``, ``stage_1.0.conv_reduce``, ...), so a
RobustBench state dict needs only the ``backbone.`` / ``head.fc.`` prefixes
(``tools/convert_timm_classifier.py --arch robustbench-wrn`` or ``robustbench-resnext``). The
ResNeXt checkpoint normalises its input inside the model, ``(x - 0.5) / 0.5``; here the data
preprocessor does (mean = std = 127.5).
"""
from __future__ import annotations

import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn

__all__ = ['CifarResNeXt', 'CifarWideResNet']


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, groups=groups, bias=False)


class _PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the input (a 1x1 projection of the activated input
    where the width or the stride changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        # the released WRN has no projection module where the shapes match (None in its state)
        self.convShortcut = (nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
                             if in_channels != out_channels else None)
        if self.convShortcut is None and stride != 1:
            raise ValueError('a pre-activation block without a projection keeps the stride 1')

    def forward(self, x: Tensor) -> Tensor:
        activated = F.relu(self.bn1(x))
        residual = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        # where it projects, the shortcut also starts from the activated input
        shortcut = x if self.convShortcut is None else self.convShortcut(activated)
        return shortcut + residual


class _Stage(nn.Module):
    """``layer``: the blocks of one width (a wrapper kept for the checkpoint's key names)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.layer = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


@MODELS.register_module()
class CifarWideResNet(BaseModule):
    """Pre-activation Wide ResNet for 32x32 images (WRN-depth-widen).

    A 3x3 stem conv to 16 channels, three stages of ``(depth - 4) / 6`` blocks at widths
    16k, 32k and 64k (k = ``widen_factor``; strides 1, 2, 2), then BN and ReLU.

    Args:
        depth (int): 6n + 4. Defaults to 28.
        widen_factor (int): k. Defaults to 10.
        in_channels (int): Defaults to 3.
        init_cfg (dict | list, optional): MMEngine initialisation config.
    """

    def __init__(self, depth: int = 28, widen_factor: int = 10, in_channels: int = 3,
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f'CifarWideResNet: depth must be 6n + 4 (10, 16, 22, 28, ...), '
                             f'got {depth}')
        if widen_factor < 1:
            raise ValueError(f'CifarWideResNet: widen_factor must be >= 1, got {widen_factor}')
        blocks_per_stage = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = _conv3x3(in_channels, 16)
        channels = 16
        for index, (width, stride) in enumerate(zip(widths, (1, 2, 2)), 1):
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(_PreActBlock(channels, width, stride if b == 0 else 1))
                channels = width
            self.add_module(f'block{index}', _Stage(blocks))
        self.bn1 = nn.BatchNorm2d(channels)
        self.out_channels = channels

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return (F.relu(self.bn1(x)), )


class _ResNeXtBlock(nn.Module):
    """1x1 reduce, grouped 3x3, 1x1 expand (x4), each with BN; ReLU after the sum."""

    def __init__(self, in_channels: int, planes: int, cardinality: int, base_width: int,
                 stride: int) -> None:
        super().__init__()
        inner = (planes * base_width // 64) * cardinality
        out_channels = planes * 4
        self.conv_reduce = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(inner)
        self.conv_conv = _conv3x3(inner, inner, stride, groups=cardinality)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_expand = nn.Conv2d(inner, out_channels, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn_reduce(self.conv_reduce(x)))
        out = F.relu(self.bn(self.conv_conv(out)))
        out = self.bn_expand(self.conv_expand(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + out)


@MODELS.register_module()
class CifarResNeXt(BaseModule):
    """ResNeXt for 32x32 images (ResNeXt-depth, ``cardinality`` groups of ``base_width``).

    A 3x3 stem conv to 64 channels with BN and ReLU, three stages of ``(depth - 2) / 9``
    bottleneck blocks with 64, 128 and 256 planes (outputs 4x; strides 1, 2, 2).

    Args:
        depth (int): 9n + 2. Defaults to 29.
        cardinality (int): Groups of the 3x3 convolutions. Defaults to 4.
        base_width (int): Width of a group at 64 planes. Defaults to 32.
        in_channels (int): Defaults to 3.
        init_cfg (dict | list, optional): MMEngine initialisation config.
    """

    def __init__(self, depth: int = 29, cardinality: int = 4, base_width: int = 32,
                 in_channels: int = 3, init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg)
        if depth < 11 or (depth - 2) % 9:
            raise ValueError(f'CifarResNeXt: depth must be 9n + 2 (11, 20, 29, ...), got {depth}')
        blocks_per_stage = (depth - 2) // 9
        self.conv_1_3x3 = _conv3x3(in_channels, 64)
        self.bn_1 = nn.BatchNorm2d(64)
        channels = 64
        for index, (planes, stride) in enumerate(zip((64, 128, 256), (1, 2, 2)), 1):
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(_ResNeXtBlock(channels, planes, cardinality, base_width,
                                            stride if b == 0 else 1))
                channels = planes * 4
            self.add_module(f'stage_{index}', nn.Sequential(*blocks))
        self.out_channels = channels

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = F.relu(self.bn_1(self.conv_1_3x3(x)))
        return (self.stage_3(self.stage_2(self.stage_1(x))), )
