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

Two ways to draw the parameters from a ``torch.Generator``: :func:`draw_view` (CoTTA's port:
the five colour factors in a fixed order, the noise from a seed of its own), and
:func:`draw_reference_view`, the order and arithmetic of the reference transform itself
(``get_tta_transforms`` of mariodoebler/test-time-adaptation and BIT-DA/RoTTA, which RoTTA, RMT
and ROID use): the colour order, then each colour factor as it is applied, the affine, the blur,
the flip and the noise, each a float32 draw as torch's global generator would give it, so a
generator seeded with ``s`` gives the views the reference gives after ``torch.manual_seed(s)``.
It also draws the view of ROID (``cotta_augs=False``: reflect padding, no blur, no noise).

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
from torch import Tensor, nn

__all__ = ['ViewParams', 'apply_view', 'draw_reference_view', 'draw_view', 'pixel_statistics',
           'random_view', 'shift_hue', 'to_inputs', 'to_pixels', 'warp']

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
COLOUR_RANGES = (BRIGHTNESS, CONTRAST, SATURATION, HUE, GAMMA)
#: How the warp fills the image's surroundings: torchvision's ``Pad`` modes.
PADDINGS = ('edge', 'reflect')
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
        sigma (float | None): Blur standard deviation in pixels; None: no blur.
        flip (bool): Mirror horizontally.
        noise_seed (int | None): Seed of the noise generator (on the images' device); None:
            the noise is ``noise`` or nothing.
        padding (str): What the warp sees around the image, ``'edge'`` or ``'reflect'``.
        noise (Tensor | None): Noise drawn with the parameters, already scaled, (N, 3, H, W);
            added when given.
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
    sigma: float | None
    flip: bool
    noise_seed: int | None
    padding: str = 'edge'
    noise: Tensor | None = None


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


def draw_reference_view(generator: torch.Generator,
                        shape: tuple[int, ...],
                        blur: bool = True,
                        noise: bool = True,
                        padding: str = 'edge') -> ViewParams:
    """Draw one view of a batch of ``shape`` (N, 3, H, W) in the reference transform's order.

    ``torch.randperm(5)``, then each colour factor in that order, the angle, the shifts (whole
    pixels, rounded as Python rounds), the scale, the blur's sigma (``blur``), the flip and the
    noise (``noise``, float32 normal, times 0.005), every draw from ``generator`` as the
    reference draws it from torch's global generator (float32 ``uniform_``). ``blur=False,
    noise=False, padding='reflect'`` is ROID's transform.
    """
    if padding not in PADDINGS:
        raise ValueError(f'padding must be one of {PADDINGS}, got {padding!r}')

    def uniform(low: float, high: float) -> float:
        return torch.empty(1, dtype=torch.float32).uniform_(low, high, generator=generator).item()

    height, width = shape[-2:]
    order = tuple(int(i) for i in torch.randperm(len(COLOUR_OPS), generator=generator))
    colour = dict.fromkeys(COLOUR_OPS, 0.0)
    for index in order:  # each factor is drawn as its operation comes
        colour[COLOUR_OPS[index]] = uniform(*COLOUR_RANGES[index])
    angle = uniform(-DEGREES, DEGREES)
    # torchvision's RandomAffine on the padded image: whole pixels, Python's rounding
    max_dx = TRANSLATE * (width + 2 * (width // 2))
    max_dy = TRANSLATE * (height + 2 * (height // 2))
    translate = (int(round(uniform(-max_dx, max_dx))), int(round(uniform(-max_dy, max_dy))))
    scale = uniform(*SCALE)
    sigma = uniform(*BLUR_SIGMA) if blur else None
    flip = bool(torch.rand(1, generator=generator) < FLIP_PROB)
    drawn = torch.randn(tuple(shape), generator=generator) * NOISE_STD if noise else None
    return ViewParams(order, *colour.values(), angle, translate, scale, sigma, flip, None,
                      padding, drawn)


def apply_view(images: Tensor, params: ViewParams) -> Tensor:
    """The view ``params`` of ``images`` (N, 3, H, W), RGB in [0, 1]; same shape, in [0, 1]."""
    x = images.clamp(0, 1)
    for index in params.order:
        x = _colour(x, COLOUR_OPS[index], getattr(params, COLOUR_OPS[index]))
    x = warp(x, params.angle, params.translate, params.scale, params.sigma, params.padding)
    if params.flip:
        x = x.flip(-1)
    if params.noise is not None:
        x = x + params.noise.to(x)
    elif params.noise_seed is not None:
        noise = torch.Generator(device=x.device).manual_seed(params.noise_seed)
        x = x + NOISE_STD * torch.randn(x.shape, generator=noise, device=x.device,
                                        dtype=x.dtype)
    return x.clamp(0, 1)


def random_view(images: Tensor, generator: torch.Generator) -> Tensor:
    """One random view of ``images`` (N, 3, H, W), RGB in [0, 1], drawn from ``generator``."""
    return apply_view(images, draw_view(generator, *images.shape[-2:]))


def pixel_statistics(model: nn.Module) -> tuple[Tensor, Tensor]:
    """(1, C, 1, 1) ``mean`` and ``std`` that the model's data preprocessor normalises
    [0, 255] pixels with (0 and 1 when it does not normalise)."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    mean, std = getattr(preprocessor, 'mean', None), getattr(preprocessor, 'std', None)
    if mean is None or std is None:
        return torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    return (mean.detach().float().cpu().view(1, -1, 1, 1),
            std.detach().float().cpu().view(1, -1, 1, 1))


def to_pixels(inputs: Tensor, statistics: tuple[Tensor, Tensor]) -> Tensor:
    """Preprocessed inputs back to RGB in [0, 1] (the references' image space), by
    :func:`pixel_statistics`."""
    mean, std = (t.to(inputs) for t in statistics)
    return (inputs * std + mean) / 255


def to_inputs(pixels: Tensor, statistics: tuple[Tensor, Tensor]) -> Tensor:
    """The inverse of :func:`to_pixels`."""
    mean, std = (t.to(pixels) for t in statistics)
    return (pixels * 255 - mean) / std


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
    """Rotate the hue of RGB images (N, 3, H, W) in [0, 1] by ``shift`` turns (HSV space).

    Computed in float32 whatever the input's dtype, in the order of operations of
    torchvision's ``adjust_hue`` (which the references call, and which converts to float32):
    the hue in turns as ``fmod(h / 6 + 1, 1)``, shifted modulo 1, and ``p, q, t`` clipped to
    [0, 1]; so a float64 view equals the reference's to the last bit of the float32 hue.
    """
    dtype = x.dtype
    x = x.float()
    r, g, b = x.unbind(1)
    value, low = x.max(1)[0], x.min(1)[0]
    flat = value == low
    delta = value - low
    one = torch.ones_like(value)
    sat = delta / torch.where(flat, one, value)
    span = torch.where(flat, one, delta)
    rc, gc, bc = (value - r) / span, (value - g) / span, (value - b) / span
    on_r, on_g = value == r, (value == g) & (value != r)
    on_b = (value != g) & (value != r)
    hue = on_r * (bc - gc) + on_g * (2.0 + rc - bc) + on_b * (4.0 + gc - rc)
    hue = torch.fmod(hue / 6.0 + 1.0, 1.0)
    hue = (hue + shift) % 1.0
    sector = torch.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = sector.long() % 6
    p = torch.clamp(value * (1.0 - sat), 0.0, 1.0)
    q = torch.clamp(value * (1.0 - sat * frac), 0.0, 1.0)
    t = torch.clamp(value * (1.0 - sat * (1.0 - frac)), 0.0, 1.0)
    candidates = torch.stack([value, p, q, t])  # indexed by the table below
    # which of (value, p, q, t) each channel takes in each of the six hue sectors
    table = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]],
                         device=x.device)
    channels = [candidates.gather(0, table[c][sector].unsqueeze(0))[0] for c in range(3)]
    return torch.stack(channels, 1).to(dtype)


def warp(x: Tensor, angle: float, translate: tuple[int, int], scale: float,
         sigma: float | None, padding: str = 'edge') -> Tensor:
    """Rotate (degrees), scale and shift (pixels) about the image centre, then blur (unless
    ``sigma`` is None).

    Outside the image the border pixels repeat (``padding='edge'``) or the image is mirrored
    without repeating its border (``'reflect'``, torch's and torchvision's reflect padding, by
    half the image size as the reference pads). The warp is computed on the image plus the
    blur's margin, so the blur near the border sees warped content as it does on the
    reference's padded image.
    """
    n, c, h, w = x.shape
    margin = BLUR_KERNEL // 2 if sigma is not None else 0
    if padding == 'reflect':
        x = F.pad(x, (w // 2, w // 2, h // 2, h // 2), mode='reflect')
    elif padding != 'edge':
        raise ValueError(f'padding must be one of {PADDINGS}, got {padding!r}')
    src_h, src_w = x.shape[-2:]
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    kw = dict(device=x.device, dtype=x.dtype)
    # pixel centres of the output, relative to the image centre
    ys = torch.arange(-margin, h + margin, **kw) + 0.5 - h / 2 - translate[1]
    xs = torch.arange(-margin, w + margin, **kw) + 0.5 - w / 2 - translate[0]
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    src_x = (cos * gx + sin * gy) / scale
    src_y = (-sin * gx + cos * gy) / scale
    grid = torch.stack([src_x / (src_w / 2), src_y / (src_h / 2)], -1)
    out = F.grid_sample(x, grid.unsqueeze(0).expand(n, -1, -1, -1), mode='bilinear',
                        padding_mode='border', align_corners=False)
    if sigma is None:
        return out
    taps = torch.arange(BLUR_KERNEL, **kw) - margin
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
