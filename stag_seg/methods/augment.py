"""Random image views for augmentation-averaged predictions, on batched tensors.

The view of CoTTA's classification code (``get_tta_transforms`` in qinenergy/cotta,
``imagenet/cotta.py`` and ``cifar/cotta.py``, its default, non-"soft" ranges), in this order:

1. colour jitter: brightness 0.6-1.4, contrast 0.7-1.3, saturation 0.5-1.5, hue +-0.06 and
   gamma 0.7-1.3, the five in a random order;
2. affine: rotation +-15 degrees, scale 0.9-1.1, translation up to 1/16 of the padded image
   (edge padding of half the image size on each side, so up to 1/8 of the image), no shear;
3. Gaussian blur, kernel 5, sigma 0.001-0.5;
4. horizontal flip with probability 0.5;
5. Gaussian noise, std 0.005, then a clip to [0, 1].

One draw of the parameters serves the whole batch (the reference applies one transform to the
batch tensor); the noise is drawn per element. Images are RGB in [0, 1], (N, 3, H, W).

What this implementation does differently: the edge padding, the affine warp, the blur and the
centre crop are one ``grid_sample`` with border sampling over the crop plus the blur's margin,
then a blur without padding. This gives torchvision's pixels (pad, ``affine``,
``gaussian_blur``, ``center_crop``; a test compares them) while no warped point leaves the
padded image, which holds for these ranges. The colour operations follow torchvision's
definitions (ITU-R 601-2 luma for the grey level); channels are taken as RGB.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['ViewParams', 'apply_view', 'draw_view', 'random_view', 'shift_hue', 'warp']

BRIGHTNESS = (0.6, 1.4)
CONTRAST = (0.7, 1.3)
SATURATION = (0.5, 1.5)
HUE = (-0.06, 0.06)
GAMMA = (0.7, 1.3)
DEGREES = 15.0
TRANSLATE = 1 / 16  # of the padded image, twice the image's size
SCALE = (0.9, 1.1)
BLUR_KERNEL = 5
BLUR_SIGMA = (0.001, 0.5)
FLIP_PROB = 0.5
NOISE_STD = 0.005
#: The colour operations, indexed by ``ViewParams.order``.
COLOUR_OPS = ('brightness', 'contrast', 'saturation', 'hue', 'gamma')
_LUMA = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class ViewParams:
    """The random parameters of one view (shared by every image of the batch).

    Attributes:
        order (tuple[int, ...]): The colour operations' order, indices into ``COLOUR_OPS``.
        brightness, contrast, saturation, hue, gamma (float): The colour factors.
        angle (float): Rotation in degrees.
        translate (tuple[int, int]): Shift ``(dx, dy)`` in whole pixels.
        scale (float): Zoom factor.
        sigma (float): Blur standard deviation in pixels.
        flip (bool): Mirror horizontally.
        noise_seed (int): Seed of the noise generator (on the images' device).
    """
    order: tuple[int, ...]
    brightness: float
    contrast: float
    saturation: float
    hue: float
    gamma: float
    angle: float
    translate: tuple[int, int]
    scale: float
    sigma: float
    flip: bool
    noise_seed: int


def draw_view(generator: torch.Generator, height: int, width: int) -> ViewParams:
    """Draw the parameters of one view of ``height x width`` images from ``generator``."""
    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(1, generator=generator))

    order = tuple(int(i) for i in torch.randperm(len(COLOUR_OPS), generator=generator))
    colour = [uniform(*BRIGHTNESS), uniform(*CONTRAST), uniform(*SATURATION), uniform(*HUE),
              uniform(*GAMMA)]
    angle = uniform(-DEGREES, DEGREES)
    # as torchvision's RandomAffine on the padded image: a whole number of pixels
    max_dx = TRANSLATE * (width + 2 * (width // 2))
    max_dy = TRANSLATE * (height + 2 * (height // 2))
    translate = (round(uniform(-max_dx, max_dx)), round(uniform(-max_dy, max_dy)))
    scale, sigma = uniform(*SCALE), uniform(*BLUR_SIGMA)
    flip = float(torch.rand(1, generator=generator)) < FLIP_PROB
    noise_seed = int(torch.randint(2**62, (1, ), generator=generator))
    return ViewParams(order, *colour, angle, translate, scale, sigma, flip, noise_seed)


def apply_view(images: Tensor, params: ViewParams) -> Tensor:
    """The view ``params`` of ``images`` (N, 3, H, W), RGB in [0, 1]; same shape, in [0, 1]."""
    x = images.clamp(0, 1)
    for index in params.order:
        x = _colour(x, COLOUR_OPS[index], getattr(params, COLOUR_OPS[index]))
    x = warp(x, params.angle, params.translate, params.scale, params.sigma)
    if params.flip:
        x = x.flip(-1)
    noise = torch.Generator(device=x.device).manual_seed(params.noise_seed)
    x = x + NOISE_STD * torch.randn(x.shape, generator=noise, device=x.device, dtype=x.dtype)
    return x.clamp(0, 1)


def random_view(images: Tensor, generator: torch.Generator) -> Tensor:
    """One random view of ``images`` (N, 3, H, W), RGB in [0, 1], drawn from ``generator``."""
    return apply_view(images, draw_view(generator, *images.shape[-2:]))


def _grey(x: Tensor) -> Tensor:
    return (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _blend(x: Tensor, other: Tensor | float, factor: float) -> Tensor:
    return (factor * x + (1 - factor) * other).clamp(0, 1)


def _colour(x: Tensor, op: str, factor: float) -> Tensor:
    if op == 'brightness':
        return _blend(x, 0.0, factor)
    if op == 'contrast':
        return _blend(x, _grey(x).mean((1, 2, 3), keepdim=True), factor)
    if op == 'saturation':
        return _blend(x, _grey(x), factor)
    if op == 'hue':
        return shift_hue(x, factor)
    # gamma; the clamp keeps 0 ** gamma away from NaN gradients, as the reference does
    return x.clamp(1e-8, 1) ** factor


def shift_hue(x: Tensor, shift: float) -> Tensor:
    """Rotate the hue of RGB images (N, 3, H, W) in [0, 1] by ``shift`` turns (HSV space)."""
    r, g, b = x.unbind(1)
    value, _ = x.max(1)
    delta = value - x.min(1)[0]
    sat = torch.where(value > 0, delta / value.clamp_min(1e-12), torch.zeros_like(value))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (value - r) / safe, (value - g) / safe, (value - b) / safe
    hue = torch.where(value == r, bc - gc, torch.where(value == g, 2 + rc - bc, 4 + gc - rc))
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    hue = torch.remainder(hue + shift, 1.0) * 6
    sector = hue.floor()
    frac = hue - sector
    sector = sector.long() % 6
    p, q, t = value * (1 - sat), value * (1 - sat * frac), value * (1 - sat * (1 - frac))
    candidates = torch.stack([value, p, q, t])  # indexed by the table below
    # which of (value, p, q, t) each channel takes in each of the six hue sectors
    table = x.new_tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]]).long()
    channels = [candidates.gather(0, table[c][sector].unsqueeze(0))[0] for c in range(3)]
    return torch.stack(channels, 1)


def warp(x: Tensor, angle: float, translate: tuple[int, int], scale: float,
         sigma: float) -> Tensor:
    """Rotate (degrees), scale and shift (pixels) about the image centre, then blur.

    Outside the image, the border pixels repeat (edge padding). The warp is computed on the
    image plus the blur's margin, so the blur near the border sees warped content as it does
    on the reference's padded image.
    """
    n, c, h, w = x.shape
    margin = BLUR_KERNEL // 2
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    kw = dict(device=x.device, dtype=x.dtype)
    # pixel centres of the output, relative to the image centre
    ys = torch.arange(-margin, h + margin, **kw) + 0.5 - h / 2 - translate[1]
    xs = torch.arange(-margin, w + margin, **kw) + 0.5 - w / 2 - translate[0]
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    src_x = (cos * gx + sin * gy) / scale
    src_y = (-sin * gx + cos * gy) / scale
    grid = torch.stack([src_x / (w / 2), src_y / (h / 2)], -1)
    out = F.grid_sample(x, grid.unsqueeze(0).expand(n, -1, -1, -1), mode='bilinear',
                        padding_mode='border', align_corners=False)
    taps = torch.arange(BLUR_KERNEL, **kw) - margin
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
