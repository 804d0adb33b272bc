"""The 15 ImageNet-C corruptions at severities 1-5, for RGB images of any size.

Hendrycks & Dietterich, ICLR 2019, "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations". The parameter tables (:data:`CORRUPTION_PARAMS`) are those of its public
generation scripts, ``make_imagenet_c.py`` (defined on 224x224 crops) and ``make_cifar_c.py``
(32x32), except where marked below. :func:`corrupt` takes and returns (H, W, 3) uint8 RGB.

Presets and size: ``preset='imagenet'`` uses the ImageNet table, ``'cifar'`` the CIFAR one and
``'auto'`` (the default) ``'cifar'`` when the short side is at most 64 px, else ``'imagenet'``.
Lengths in pixels are multiplied by ``s = sqrt(H * W) / native`` (native 224 or 32): blur
sigmas, the defocus kernel (resampled as a whole), the motion-blur length, the glass-blur
displacement (rounded to whole pixels, at least 1), the snow-flake zoom, the fog and frost
feature sizes, the elastic affine jitter and smoothing, and the elastic amplitude by ``s ** 2``
(smoothing white noise over ``s`` times more pixels divides its amplitude by ``s``). Zoom-blur
factors and the pixelate and JPEG settings are relative already and are not scaled.

Randomness comes only from ``rng`` (a ``numpy.random.Generator`` or a seed), so a seed fixes
the result. The released data sets cannot be matched bit for bit: their scripts drew from
numpy's global state.

Differences from the reference scripts:

- motion blur (also the streaks of snow): our own line kernel instead of ImageMagick's
  ``MotionBlurImage``, of the same shape (a one-sided half-Gaussian of ``2 * ceil(radius) + 1``
  taps along the angle, edge pixels repeated at the border), each tap spread bilinearly over
  its four nearest pixels instead of rounded to one;
- frost: the reference blends one of its frost photographs (a random crop of one of the first
  five; its ``randint(5)`` never picks the sixth). With ``frost='auto'`` (default) or
  ``'photos'`` those photographs are read from the files of the PyPI package
  ``imagecorruptions-imaug`` (Apache-2.0; ``pip install 'stag_seg[frost]'``) without importing
  it (it imports numba); they are resized with the image as every other length is (by ``s``;
  CIFAR's crops come from photographs shrunk 5 times, as in its script). Without the package,
  ``'auto'`` falls back to a procedural ice texture (mottled haze and feathery blue-white
  crystals) blended with the published weights; :func:`frost_source` says which one is used;
- glass blur keeps what the reference's pixel "swap" does on numpy arrays: both sides of
  ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` are views, so each pixel is *copied* from a
  random neighbour (bottom-right to top-left, in place), not exchanged;
- float results (and the 8-bit intermediates of glass blur and snow) are rounded; the
  reference truncated (``np.uint8``), half a grey level darker on average;
- fog's plasma fractal is periodic, tiled where the image is larger than the map; linear
  warps go through OpenCV, which places samples to 1/32 px;

Tables: ``table='published'`` (default) is the reference scripts' parameters, the benchmark
users compare against. ``table='monotone'`` is an opt-in that changes seven entries where the
distortion did not grow with severity (measured on synthetic images by the mean absolute
difference to the clean image, averaged over seeds): ``glass_blur`` ImageNet severity 1
(.7, 1, 2) -> (.7, 1, 1) and 3 (1, 2, 3) -> (1, 2, 2), CIFAR severity 2 (.25, 1, 1) ->
(.8, 1, 1), 3 (.4, 1, 1) -> (.4, 1, 2) and 5 (.4, 1, 2) -> (.4, 1, 3) (a sigma below .3 does
nothing on 8-bit images, so CIFAR's severities 1 and 2 are one corruption, and a small blur
undoes part of the shuffle, so more blur can mean less distortion); ``motion_blur`` CIFAR
severity 4 (8, 2) -> (8, 2.25) (taps past 12 weigh below 1e-8 at sigma 2, so it equals severity
3); ``snow`` ImageNet severity 2 flake mean .2 -> .15 (it distorted more than severity 3).
The measure was taken on synthetic images: on natural photos, glass blur at ImageNet severity 1
is not inverted by the published table, so the monotone table is no general correction.

In the monotone table, ``frost`` blends
image and frost (``a * x + b * frost``); the difference to the image shrinks with ``a`` where
the frost is brighter than the image, while the image's share of the result, measured by the
correlation with it, falls strictly as ``b / a`` grows in both tables. ``elastic_transform``
first warps the whole image by a random affine map (largest at severity 1-2 at 224 px, and
shrinking with severity at 32 px), then by a smooth random displacement; the local,
non-affine strain of that displacement grows strictly with severity in both tables.
"""
from __future__ import annotations

import io
import math
import numbers
import os
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from ..domain_names import CORRUPTIONS

__all__ = ['CORRUPTION_PARAMS', 'CORRUPTION_PRESETS', 'CORRUPTION_TABLES', 'FROST_SOURCES',
           'MONOTONE_CHANGES', 'corrupt', 'corruption_params', 'frost_photos', 'frost_source',
           'resolve_preset']

#: Native image size (pixels) of each parameter table.
CORRUPTION_PRESETS = {'imagenet': 224, 'cifar': 32}
#: ``preset='auto'`` takes ``'cifar'`` up to this short side (pixels), ``'imagenet'`` above.
AUTO_CIFAR_MAX_SIDE = 64

_NATIVE_IMAGENET = 244  # make_imagenet_c.py writes its elastic table in multiples of 244
_CIFAR = 32

#: Per corruption and preset, the five severities' parameters of the published scripts
#: (``make_imagenet_c.py``, ``make_cifar_c.py``). Each corruption's function names the fields
#: in a comment.
CORRUPTION_PARAMS: dict[str, dict[str, tuple]] = {
    'gaussian_noise': dict(imagenet=(.08, .12, .18, .26, .38),
                           cifar=(.04, .06, .08, .09, .10)),
    'shot_noise': dict(imagenet=(60, 25, 12, 5, 3), cifar=(500, 250, 100, 75, 50)),
    'impulse_noise': dict(imagenet=(.03, .06, .09, .17, .27), cifar=(.01, .02, .03, .05, .07)),
    'defocus_blur': dict(imagenet=((3, .1), (4, .5), (6, .5), (8, .5), (10, .5)),
                         cifar=((.3, .4), (.4, .5), (.5, .6), (1, .2), (1.5, .1))),
    'glass_blur': dict(imagenet=((.7, 1, 2), (.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
                       cifar=((.05, 1, 1), (.25, 1, 1), (.4, 1, 1), (.25, 1, 2), (.4, 1, 2))),
    'motion_blur': dict(imagenet=((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
                        cifar=((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),
    # (start, stop, step) of np.arange: the zoom factors averaged
    'zoom_blur': dict(imagenet=((1, 1.11, .01), (1, 1.16, .01), (1, 1.21, .02), (1, 1.26, .02),
                                (1, 1.31, .03)),
                      cifar=((1, 1.06, .01), (1, 1.11, .01), (1, 1.16, .01), (1, 1.21, .01),
                             (1, 1.26, .01))),
    'snow': dict(imagenet=((.1, .3, 3, .5, 10, 4, .8), (.2, .3, 2, .5, 12, 4, .7),
                           (.55, .3, 4, .9, 12, 8, .7), (.55, .3, 4.5, .85, 12, 8, .65),
                           (.55, .3, 2.5, .85, 12, 12, .55)),
                 cifar=((.1, .2, 1, .6, 8, 3, .95), (.1, .2, 1, .5, 10, 4, .9),
                        (.15, .3, 1.75, .55, 10, 4, .9), (.25, .3, 2.25, .6, 12, 6, .85),
                        (.3, .3, 1.25, .65, 14, 12, .8))),
    'frost': dict(imagenet=((1, .4), (.8, .6), (.7, .7), (.65, .7), (.6, .75)),
                  cifar=((1, .2), (1, .3), (.9, .4), (.85, .4), (.75, .45))),
    'fog': dict(imagenet=((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
                cifar=((.2, 3), (.5, 3), (.75, 2.5), (1, 2), (1.5, 1.75))),
    'brightness': dict(imagenet=(.1, .2, .3, .4, .5), cifar=(.05, .1, .15, .2, .3)),
    'contrast': dict(imagenet=(.4, .3, .2, .1, .05), cifar=(.75, .5, .4, .3, .15)),
    'elastic_transform': dict(
        imagenet=tuple((_NATIVE_IMAGENET * a, _NATIVE_IMAGENET * s, _NATIVE_IMAGENET * f)
                       for a, s, f in ((2, .7, .1), (2, .08, .2), (.05, .01, .02),
                                       (.07, .01, .02), (.12, .01, .02))),
        cifar=tuple((_CIFAR * a, _CIFAR * s, _CIFAR * f)
                    for a, s, f in ((0, 0, .08), (.05, .2, .07), (.08, .06, .06),
                                    (.1, .04, .05), (.1, .03, .03)))),
    'pixelate': dict(imagenet=(.6, .5, .4, .3, .25), cifar=(.95, .9, .85, .75, .65)),
    'jpeg_compression': dict(imagenet=(25, 18, 15, 10, 7), cifar=(80, 65, 58, 50, 40)),
}
assert tuple(CORRUPTION_PARAMS) == CORRUPTIONS

#: ``table='monotone'``: (corruption, preset, severity) -> the parameters that replace the
#: published ones (see the module docstring).
MONOTONE_CHANGES: dict[tuple[str, str, int], tuple] = {
    ('glass_blur', 'imagenet', 1): (.7, 1, 1),
    ('glass_blur', 'imagenet', 3): (1, 2, 2),
    ('glass_blur', 'cifar', 2): (.8, 1, 1),
    ('glass_blur', 'cifar', 3): (.4, 1, 2),
    ('glass_blur', 'cifar', 5): (.4, 1, 3),
    ('motion_blur', 'cifar', 4): (8, 2.25),
    ('snow', 'imagenet', 2): (.15, .3, 2, .5, 12, 4, .7),
}
#: The parameter tables :func:`corrupt` offers.
CORRUPTION_TABLES = ('published', 'monotone')
#: Where frost comes from: the reference photographs when installed, else a texture.
FROST_SOURCES = ('auto', 'photos', 'procedural')
#: The photographs the reference draws from (``np.random.randint(5)``: the sixth is unused).
FROST_FILES = ('frost1.png', 'frost2.png', 'frost3.png', 'frost4.jpg', 'frost5.jpg')
_FROST_PACKAGE = 'imagecorruptions'  # the import name of imagecorruptions-imaug
_frost_cache: dict[str, np.ndarray] = {}


def corruption_params(corruption: str, preset: str, severity: int,
                      table: str = 'published') -> tuple:
    """The parameters of ``corruption`` at ``severity`` in ``preset``'s table."""
    if table not in CORRUPTION_TABLES:
        raise ValueError(f'table must be one of {CORRUPTION_TABLES}, got {table!r}')
    published = CORRUPTION_PARAMS[corruption][preset][int(severity) - 1]
    if table == 'monotone':
        return MONOTONE_CHANGES.get((corruption, preset, int(severity)), published)
    return published


def frost_photos() -> str | None:
    """The folder of the reference's frost photographs inside an installed
    ``imagecorruptions-imaug``, found without importing the package; None when absent."""
    import importlib.util
    try:
        spec = importlib.util.find_spec(_FROST_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = os.path.join(location, 'frost')
        if all(os.path.isfile(os.path.join(folder, f)) for f in FROST_FILES):
            return folder
    return None


def frost_source(frost: str = 'auto') -> str:
    """``'photos'`` or ``'procedural'``: what ``corrupt(..., frost=frost)`` blends in.

    Raises:
        ModuleNotFoundError: ``frost='photos'`` without ``imagecorruptions-imaug``.
    """
    if frost not in FROST_SOURCES:
        raise ValueError(f'frost must be one of {FROST_SOURCES}, got {frost!r}')
    if frost == 'procedural':
        return 'procedural'
    if frost_photos() is not None:
        return 'photos'
    if frost == 'photos':
        raise ModuleNotFoundError(
            "frost='photos' needs the reference's frost photographs from the package "
            "imagecorruptions-imaug: pip install 'stag_seg[frost]' (or pip install --no-deps "
            "imagecorruptions-imaug), or use frost='procedural'")
    return 'procedural'


def _frost_photo(index: int) -> np.ndarray:
    """Photograph ``index`` of :data:`FROST_FILES` as (H, W, 3) float32 RGB in 0..255."""
    name = FROST_FILES[index]
    if name not in _frost_cache:
        image = cv2.imread(os.path.join(frost_photos(), name), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f'cannot read the frost photograph {name} of imagecorruptions-imaug')
        _frost_cache[name] = image[..., ::-1].astype(np.float32)
    return _frost_cache[name]


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _gaussian(x: np.ndarray, sigma: float, truncate: float = 4.0,
              border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Gaussian blur over the two spatial axes (skimage's ``gaussian`` defaults: 'nearest'
    border, kernel radius ``int(truncate * sigma + 0.5)``)."""
    radius = int(truncate * sigma + 0.5)
    if radius < 1:
        return x
    size = 2 * radius + 1
    return cv2.GaussianBlur(x, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=border)


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's defocus kernel: a normalised disk of ``radius`` on a grid at least
    17 px wide, antialiased by a Gaussian of ``alias_blur`` in a 3x3 window (5x5 above
    radius 8)."""
    half = 8 if radius <= 8 else math.ceil(radius)
    grid = np.arange(-half, half + 1, dtype=np.float32)
    disk = (grid[None, :] ** 2 + grid[:, None] ** 2 <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    window = 3 if radius <= 8 else 5
    return cv2.GaussianBlur(disk, (window, window), sigmaX=alias_blur)


def _defocus_kernel(radius: float, alias_blur: float, scale: float) -> np.ndarray:
    """:func:`_disk` at the native size, resampled by ``scale``: the kernel keeps its shape
    (scaling radius and sigma separately would not, the 3x3 window and the pixel grid
    matter at CIFAR's sub-pixel radii)."""
    kernel = _disk(radius, alias_blur)
    if scale == 1:
        return kernel
    half = kernel.shape[0] // 2
    size = 2 * max(int(round(half * scale)), 1) + 1
    interpolation = cv2.INTER_AREA if size < kernel.shape[0] else cv2.INTER_LINEAR
    kernel = cv2.resize(kernel, (size, size), interpolation=interpolation)
    return kernel / kernel.sum()


def _motion_kernel(radius: float, sigma: float, angle: float) -> np.ndarray:
    """One-sided motion kernel: ``2 * ceil(radius) + 1`` taps at distance i = 0, 1, ...
    along ``angle`` (degrees, image y down), weighted ``exp(-i^2 / (2 sigma^2))``."""
    taps = np.arange(2 * math.ceil(radius) + 1, dtype=np.float64)
    weights = np.exp(-taps ** 2 / (2 * sigma ** 2))
    keep = weights > 1e-4 * weights[0]  # taps past ~4 sigma add nothing but kernel size
    taps, weights = taps[keep], weights[keep] / weights[keep].sum()
    dx, dy = taps * math.cos(math.radians(angle)), taps * math.sin(math.radians(angle))
    half = int(math.ceil(max(np.abs(dx).max(), np.abs(dy).max()))) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    x, y = dx + half, dy + half
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + oy, x0 + ox), weights * w)
    return kernel


def _motion_blur(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    kernel = _motion_kernel(radius, sigma, angle)
    return cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REPLICATE)


def _zoom_map(n_in: int, n_out: int, zoom: float) -> tuple[float, float]:
    """Per axis, ``(scale, offset)`` of the source coordinate of an output pixel, for: crop the
    centre ``ceil(n_out / zoom)`` of ``n_in``, zoom it with scipy.ndimage.zoom's linear,
    corner-aligned grid, keep the centre ``n_out`` (the reference's ``clipped_zoom``)."""
    crop = math.ceil(n_out / zoom - 1e-9)
    zoomed = int(round(crop * zoom))
    top, trim = (n_in - crop) // 2, (zoomed - n_out) // 2
    scale = (crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0
    return scale, top + trim * scale


def _clipped_zoom(x: np.ndarray, zoom: float, out_hw: tuple[int, int]) -> np.ndarray:
    """:func:`_zoom_map` on both axes, as one linear warp of ``x`` to ``out_hw``."""
    sy, ty = _zoom_map(x.shape[0], out_hw[0], zoom)
    sx, tx = _zoom_map(x.shape[1], out_hw[1], zoom)
    matrix = np.array([[sx, 0, tx], [0, sy, ty]], np.float64)
    return cv2.warpAffine(x, matrix, (out_hw[1], out_hw[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _plasma(rng: np.random.Generator, size: int, decay: float) -> np.ndarray:
    """Periodic diamond-square fractal in [0, 1], ``size`` a power of two.

    The reference draws each level's offsets as ``wibble * U(-wibble, wibble)`` with
    ``wibble`` starting at 100 and divided by ``decay`` per level: the amplitude falls by
    ``decay ** 2`` per level, reproduced here."""
    height = np.zeros((size, size))
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corners = height[0::step, 0::step]
        ring = corners + np.roll(corners, -1, 0)
        ring = ring + np.roll(ring, -1, 1)
        height[half::step, half::step] = (ring / 4 + wibble ** 2
                                          * rng.uniform(-1, 1, corners.shape))
        centres = height[half::step, half::step]
        across = corners + np.roll(corners, -1, 1) + centres + np.roll(centres, 1, 0)
        height[0::step, half::step] = across / 4 + wibble ** 2 * rng.uniform(-1, 1, across.shape)
        down = corners + np.roll(corners, -1, 0) + centres + np.roll(centres, 1, 1)
        height[half::step, 0::step] = down / 4 + wibble ** 2 * rng.uniform(-1, 1, down.shape)
        step, wibble = half, wibble / decay
    height -= height.min()
    return height / height.max()


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Smooth noise in about [-1, 1] with features of ``cell`` pixels."""
    rows, cols = max(int(height / cell), 1) + 2, max(int(width / cell), 1) + 2
    small = rng.uniform(-1, 1, (rows, cols)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _branches(rng: np.random.Generator, origins: np.ndarray, angles: np.ndarray,
              lengths: np.ndarray, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Slightly wandering polylines: (N, segments + 1, 2) points and (N, segments) headings."""
    headings = angles[:, None] + np.cumsum(rng.normal(0, .15, (len(angles), segments)), 1)
    steps = (lengths / segments)[:, None, None] * np.stack([np.cos(headings),
                                                            np.sin(headings)], 2)
    points = np.concatenate([origins[:, None], origins[:, None] + np.cumsum(steps, 1)], 1)
    return points, headings


def _frost_texture(rng: np.random.Generator, height: int, width: int,
                   unit: float) -> np.ndarray:
    """Procedural frost: (H, W, 3) float32 in [0, 255], blue-white.

    Mottled ice with a fine grain, covered by feathery crystals: stems that wander a little,
    side branches at about 60 degrees and branches of those, each glowing faintly. It is
    designed in "photo pixels" (the pixels of the reference's frost photographs: crystal
    lines a pixel wide, stems tens of pixels long); ``unit`` is the size of one in output
    pixels. It is drawn where a photo pixel is at least one pixel, then resized.
    """
    up = max(1.0, 1.0 / unit)  # drawing pixels per output pixel
    px = unit * up  # drawing pixels per photo pixel
    dh, dw = int(round(height * up)), int(round(width * up))
    haze = sum(amp * _value_noise(rng, dh, dw, cell * px)
               for amp, cell in ((1.0, 90), (.6, 36), (.35, 14), (.25, 5), (.2, 1.5)))
    margin = 40 * px
    count = rng.poisson((dh + 2 * margin) * (dw + 2 * margin) / (26 * px) ** 2) + 1
    origins = rng.uniform((-margin, -margin), (dw + margin, dh + margin), (count, 2))
    angles, lengths = rng.uniform(0, 2 * np.pi, count), rng.uniform(15, 45, count) * px
    crystals = np.zeros((dh, dw), np.float32)
    thickness = max(int(round(px)), 1)
    # stems, side branches, their branches: segments, children per branch, brightness
    for segments, children, brightness in ((8, 5, 1.0), (4, 3, .7), (3, 0, .5)):
        points, headings = _branches(rng, origins, angles, lengths, segments)
        lines = list(np.round(points * 16).astype(np.int32))  # 4 fractional bits
        cv2.polylines(crystals, lines, False, brightness, thickness, cv2.LINE_AA, shift=4)
        if not children:
            break
        parent = np.repeat(np.arange(len(origins)), children)
        at = rng.integers(1, segments, parent.size)  # a joint of the parent, not its root
        side = rng.choice((-1, 1), parent.size) * rng.normal(np.pi / 3, .2, parent.size)
        origins, angles = points[parent, at], headings[parent, at] + side
        lengths = lengths[parent] * rng.uniform(.25, .5, parent.size)
    glow = _gaussian(crystals, 3 * px)
    crystals = _gaussian(crystals, .5 * px)
    ice = np.clip(.42 + .16 * haze + .5 * crystals + glow, 0, 1)
    if (dh, dw) != (height, width):
        ice = cv2.resize(ice, (width, height), interpolation=cv2.INTER_AREA)
    tint = np.array([.82, .91, 1.0], np.float32)  # blue-white, as in frost photographs
    return (255 * ice[..., None] * tint).astype(np.float32)


# ------------------------------------------------------------------------------------------
# corruptions: f(x, c, rng, scale) with x float32 (H, W, 3) in [0, 1] (or uint8 where the
# reference works on 8-bit images), returning float in [0, 1] or uint8
# ------------------------------------------------------------------------------------------


def _gaussian_noise(x, c, rng, scale):
    # c: noise standard deviation
    return x + rng.standard_normal(x.shape, np.float32) * np.float32(c)


def _shot_noise(x, c, rng, scale):
    # c: photons per unit intensity
    return rng.poisson(x * c) / c


def _impulse_noise(x, c, rng, scale):
    # c: fraction of values set to 0 or 1 (salt and pepper alike, each channel on its own)
    u = rng.random(x.shape, np.float32)
    out = x.copy()
    out[u < c / 2] = 0.0
    out[(u >= c / 2) & (u < c)] = 1.0
    return out


def _defocus_blur(x, c, rng, scale):
    # c: (disk radius, antialiasing sigma), pixels
    kernel = _defocus_kernel(c[0], c[1], scale)
    return cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def _glass_blur(x, c, rng, scale):
    # c: (sigma, max displacement, iterations); displacements in [-d, d - 1] as the reference
    sigma, d, iterations = c[0] * scale, max(int(c[1] * scale + .5), 1), c[2]
    img = np.round(np.clip(_gaussian(x, sigma), 0, 1) * 255).astype(np.uint8)
    height, width = img.shape[:2]
    rows, cols = np.arange(height - d, d, -1), np.arange(width - d, d, -1)
    for _ in range(iterations):
        if not (rows.size and cols.size):
            break
        offsets = rng.integers(-d, d, size=(rows.size, cols.size, 2))
        for r, h in enumerate(rows):  # sequential: a row copies from rows already copied into
            dx, dy = offsets[r, :, 0], offsets[r, :, 1]
            values = img[h + dy, cols + dx]
            # same-row sources to the right were copied into earlier in this row
            for j in np.nonzero((dy == 0) & (dx > 0))[0]:
                if j - dx[j] >= 0:
                    values[j] = values[j - dx[j]]
            img[h, cols] = values
    return np.clip(_gaussian(img.astype(np.float32) / 255, sigma), 0, 1)


def _motion_blur_corruption(x, c, rng, scale):
    # c: (radius, sigma) of the kernel, pixels; direction uniform in [-45, 45) degrees
    return _motion_blur(x, c[0] * scale, c[1] * scale, rng.uniform(-45, 45))


def _zoom_blur(x, c, rng, scale):
    # c: np.arange arguments of the zoom factors; the image and its zooms are averaged
    factors = np.arange(*c)
    out = x.copy()
    for zoom in factors:
        out += _clipped_zoom(x, float(zoom), x.shape[:2])
    return out / (len(factors) + 1)


def _snow(x, c, rng, scale):
    # c: (flake mean, flake std, flake zoom, threshold, streak radius, streak sigma,
    #     image weight of the whitened image blend)
    mean, std, zoom, threshold, radius, sigma, weight = c
    height, width = x.shape[:2]
    zoom = zoom * scale
    layer = rng.normal(mean, std, (math.ceil(height / zoom - 1e-9),
                                   math.ceil(width / zoom - 1e-9))).astype(np.float32)
    layer = _clipped_zoom(layer, zoom, (height, width))
    layer[layer < threshold] = 0
    layer = np.round(np.clip(layer, 0, 1) * 255) / 255  # the reference's 8-bit layer
    layer = _motion_blur(layer.astype(np.float32), radius * scale, sigma * scale,
                         rng.uniform(-135, -45))[..., None]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = weight * x + (1 - weight) * np.maximum(x, gray * 1.5 + .5)
    return x + layer + layer[::-1, ::-1]


def _frost(x, c, rng, scale, preset, source='procedural'):
    # c: (image weight, frost weight); frost in 0..255
    unit = scale if preset == 'imagenet' else .2 * scale  # CIFAR: photographs shrunk 5 times
    height, width = x.shape[:2]
    if source == 'photos':
        texture = _photo_crop(rng, height, width, unit)
    else:
        texture = _frost_texture(rng, height, width, unit)
    return (c[0] * 255 * x + c[1] * texture) / 255


def _photo_crop(rng: np.random.Generator, height: int, width: int, unit: float) -> np.ndarray:
    """A random (height, width) crop of a random reference photograph resized by ``unit``
    (and further, where it would be smaller than the image), float32 RGB 0..255."""
    photo = _frost_photo(int(rng.integers(len(FROST_FILES))))
    grow = max(unit, height / photo.shape[0], width / photo.shape[1])
    if grow != 1:
        size = (max(math.ceil(photo.shape[1] * grow), width),
                max(math.ceil(photo.shape[0] * grow), height))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if grow < 1
                           else cv2.INTER_LINEAR)
    top = int(rng.integers(photo.shape[0] - height + 1))
    left = int(rng.integers(photo.shape[1] - width + 1))
    return np.ascontiguousarray(photo[top:top + height, left:left + width])


def _fog(x, c, rng, scale, preset):
    # c: (fog strength, plasma decay); the plasma map is 256 px (ImageNet) or 32 px (CIFAR)
    height, width = x.shape[:2]
    native = 256 if preset == 'imagenet' else 32
    side = max(int(round(native * scale)), 2)
    size = native * 2 ** max(0, math.ceil(math.log2(max(scale, 1e-9))))
    plasma = _plasma(rng, size, c[1]).astype(np.float32)
    if side != size:
        plasma = cv2.resize(plasma, (side, side), interpolation=cv2.INTER_AREA)
    plasma = np.tile(plasma, (math.ceil(height / side), math.ceil(width / side)))
    max_val = x.max()
    fogged = x + c[0] * plasma[:height, :width, None]
    return fogged * max_val / (max_val + c[0])


def _brightness(x, c, rng, scale):
    # c: added to the HSV value; scaling RGB by V'/V keeps hue and saturation as the round trip
    value = x.max(axis=2, keepdims=True)
    new = np.clip(value + c, 0, 1)
    ratio = np.divide(new, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * ratio, new)


def _contrast(x, c, rng, scale):
    # c: factor on the deviation from each channel's mean
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c + means


def _elastic_warp(height: int, width: int, c: tuple, rng: np.random.Generator,
                  scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The two warps of ``elastic_transform``: a random affine (2x3 matrix, source to
    destination) and a smooth displacement field (2, H, W) in pixels, x then y (None when
    its amplitude is 0)."""
    alpha, sigma, jitter = c[0] * scale ** 2, c[1] * scale, c[2] * scale
    centre = np.float32([width // 2, height // 2])
    half = min(height, width) // 3
    src = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    dst = src + rng.uniform(-jitter, jitter, size=src.shape).astype(np.float32)
    matrix = cv2.getAffineTransform(src, dst)
    if alpha == 0:
        return matrix, None
    field = np.stack([_gaussian(rng.uniform(-1, 1, (height, width)).astype(np.float32), sigma,
                                truncate=3, border=cv2.BORDER_REFLECT) for _ in range(2)])
    return matrix, (alpha * field).astype(np.float32)


def _elastic_transform(x, c, rng, scale):
    # c: (alpha, sigma, affine jitter): amplitude and smoothing of a random displacement
    # field, and the jitter of three control points of a random affine warp applied first
    height, width = x.shape[:2]
    matrix, field = _elastic_warp(height, width, c, rng, scale)
    x = cv2.warpAffine(x, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)
    if field is None:
        return x
    grid_y, grid_x = np.mgrid[:height, :width].astype(np.float32)
    return cv2.remap(x, grid_x + field[0], grid_y + field[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def _pixelate(img, c, rng, scale):
    # c: fraction of the side kept; box-filtered down and box-resized back up
    height, width = img.shape[:2]
    small = (max(int(width * c), 1), max(int(height * c), 1))
    pil = Image.fromarray(img).resize(small, Image.Resampling.BOX)
    return np.array(pil.resize((width, height), Image.Resampling.BOX))


def _jpeg_compression(img, c, rng, scale):
    # c: JPEG quality (Pillow's defaults otherwise: 4:2:0 chroma subsampling)
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format='JPEG', quality=c)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert('RGB'))


# name -> (function, takes uint8, needs the preset)
_FUNCTIONS: dict[str, tuple[Callable, bool, bool]] = {
    'gaussian_noise': (_gaussian_noise, False, False),
    'shot_noise': (_shot_noise, False, False),
    'impulse_noise': (_impulse_noise, False, False),
    'defocus_blur': (_defocus_blur, False, False),
    'glass_blur': (_glass_blur, False, False),
    'motion_blur': (_motion_blur_corruption, False, False),
    'zoom_blur': (_zoom_blur, False, False),
    'snow': (_snow, False, False),
    'frost': (_frost, False, True),
    'fog': (_fog, False, True),
    'brightness': (_brightness, False, False),
    'contrast': (_contrast, False, False),
    'elastic_transform': (_elastic_transform, False, False),
    'pixelate': (_pixelate, True, False),
    'jpeg_compression': (_jpeg_compression, True, False),
}
assert tuple(_FUNCTIONS) == CORRUPTIONS


# ------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------


def resolve_preset(shape: tuple[int, ...], preset: str = 'auto') -> str:
    """The parameter table used for an image of ``shape`` (H, W, ...).

    Args:
        shape (tuple): The image shape.
        preset (str): ``'imagenet'``, ``'cifar'`` or ``'auto'`` (``'cifar'`` when the short
            side is at most 64 px, else ``'imagenet'``). Defaults to ``'auto'``.

    Returns:
        str: ``'imagenet'`` or ``'cifar'``.
    """
    if preset == 'auto':
        return 'cifar' if min(shape[:2]) <= AUTO_CIFAR_MAX_SIDE else 'imagenet'
    if preset not in CORRUPTION_PRESETS:
        raise ValueError(f"preset must be 'auto', 'imagenet' or 'cifar', got {preset!r}")
    return preset


def _as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f'rng must be a numpy.random.Generator, an int seed or None, got '
                    f'{type(rng).__name__}')


def _check(image: np.ndarray, corruption: str, severity: int) -> None:
    if corruption not in _FUNCTIONS:
        raise ValueError(f'unknown corruption {corruption!r}; valid names are '
                         f'{", ".join(CORRUPTIONS)}')
    if (not isinstance(severity, numbers.Integral) or isinstance(severity, bool)
            or not 1 <= severity <= 5):
        raise ValueError(f'severity must be an int in 1..5, got {severity!r}')
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a numpy array (H, W, 3) uint8 RGB, got '
                        f'{type(image).__name__}')
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be an (H, W, 3) uint8 RGB array, got shape {image.shape} '
                         f'and dtype {image.dtype}')
    if min(image.shape[:2]) < 8:
        raise ValueError(f'image must be at least 8x8 pixels, got {image.shape[0]}x'
                         f'{image.shape[1]}')


def corrupt(image: np.ndarray, corruption: str, severity: int,
            rng: np.random.Generator | int | None = None, preset: str = 'auto',
            table: str = 'published', frost: str = 'auto') -> np.ndarray:
    """Apply one ImageNet-C corruption at one severity.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB, at least 8x8.
        corruption (str): One of :data:`~stag_seg.datasets.domain_names.CORRUPTIONS`.
        severity (int): 1 (mild) to 5 (strong).
        rng (np.random.Generator | int | None): The only source of randomness: a generator,
            a seed, or None for a fresh unseeded generator. Defaults to None.
        preset (str): Parameter table, ``'imagenet'`` (224 px), ``'cifar'`` (32 px) or
            ``'auto'`` (``'cifar'`` up to a 64 px short side). Defaults to ``'auto'``.
        table (str): ``'published'`` (the reference scripts' parameters) or ``'monotone'``
            (seven entries changed; see the module docstring). Defaults to ``'published'``.
        frost (str): ``'auto'`` (the reference's photographs when ``imagecorruptions-imaug``
            is installed, else the procedural texture), ``'photos'`` or ``'procedural'``.
            Defaults to ``'auto'``.

    Returns:
        np.ndarray: The corrupted image, (H, W, 3) uint8 RGB.
    """
    _check(image, corruption, severity)
    preset = resolve_preset(image.shape, preset)
    generator = _as_generator(rng)
    scale = math.sqrt(image.shape[0] * image.shape[1]) / CORRUPTION_PRESETS[preset]
    params = corruption_params(corruption, preset, severity, table)
    source = frost_source(frost)  # checked for every corruption: bad values fail early
    function, takes_uint8, needs_preset = _FUNCTIONS[corruption]
    x = np.ascontiguousarray(image) if takes_uint8 else image.astype(np.float32) / 255
    extra = (preset, ) if needs_preset else ()
    if corruption == 'frost':
        extra += (source, )
    out = function(x, params, generator, scale, *extra)
    if out.dtype == np.uint8:
        return out
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)
