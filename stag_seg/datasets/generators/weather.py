"""The four ACDC conditions (fog, night, rain, snow) rendered onto a clean image with its depth.

Each condition is a pure function ``f(img, depth, rng, severity) -> img``: ``img`` is (H, W, 3)
uint8 RGB, ``depth`` the (H, W) float32 z-depth in metres (the sky far, e.g. 1000), ``rng`` a
``numpy.random.Generator`` (the only randomness, so a seed fixes the result) and ``severity`` in
(0, 1]. The defaults in :data:`DEFAULT_SEVERITY` are strong enough that a model trained on clean
scenes clearly loses accuracy, as on real ACDC (night hardest), while re-estimating its
normalisation statistics on the target recovers a good part of it. Pixel sizes (blur, streaks,
flakes) scale with the image, so a condition looks the same at 256x128 and at 1920x1080.

These are renderings for an embedded benchmark, not physical simulations: fog follows
Koschmieder's law, the rest are plausible image-formation recipes (listed per function).
:class:`ApplyWeather` applies a condition inside an MMSeg pipeline.
"""
from __future__ import annotations

import math
import zlib
from typing import Callable

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS
from ..domain_names import ACDC_CONDITIONS
from .scenes import SKY_DEPTH

__all__ = ['CONDITIONS', 'DEFAULT_SEVERITY', 'ApplyWeather', 'apply_condition', 'fog',
           'flat_ground_depth', 'night', 'rain', 'snow']

#: The conditions rendered here: the ACDC ones, in the order of the CoTTA continual protocol.
CONDITIONS = ACDC_CONDITIONS
#: Severity used when none is given.
DEFAULT_SEVERITY = {'fog': 0.3, 'night': 0.8, 'rain': 0.6, 'snow': 0.5}

_REFERENCE_SIZE = math.sqrt(512 * 256)  # the image size pixel lengths below are tuned for


def _check(img: np.ndarray, depth: np.ndarray, severity: float, name: str) -> float:
    """Validate the common arguments; return the pixel scale of the image."""
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
            and img.shape[2] == 3):
        shape = getattr(img, 'shape', None)
        raise ValueError(f'{name}: img must be an (H, W, 3) uint8 RGB array, got '
                         f'{type(img).__name__} of shape {shape} and dtype '
                         f'{getattr(img, "dtype", None)}')
    if not isinstance(depth, np.ndarray) or depth.shape != img.shape[:2]:
        raise ValueError(f'{name}: depth must be an array of shape {img.shape[:2]} (the image '
                         f'size), got {getattr(depth, "shape", type(depth).__name__)}')
    if not 0.0 < float(severity) <= 1.0:
        raise ValueError(f'{name}: severity must be in (0, 1], got {severity}')
    return math.sqrt(img.shape[0] * img.shape[1]) / _REFERENCE_SIZE


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Zero-mean smooth noise with about ``cells`` features across the image width."""
    rows = max(int(round(cells * height / width)), 1) + 2
    small = rng.standard_normal((rows, cells + 2)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _haze(rgb: np.ndarray, depth: np.ndarray, beta: float, airlight: np.ndarray) -> np.ndarray:
    """Koschmieder's law: ``I = J t + A (1 - t)`` with ``t = exp(-beta depth)``."""
    t = np.exp(-beta * depth.astype(np.float32))[..., None]
    return rgb * t + airlight * (1.0 - t)


def _upward(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where surfaces face up, judged from depth alone.

    On the ground plane depth falls row by row towards the camera (``-dZ/dv / Z = 1/(v - v_h)``),
    on vertical surfaces and the sky it stays constant down a column. A large fall marks the top
    edge of an object (far above, near below), where snow and water collect too.

    Returns:
        tuple[np.ndarray, np.ndarray]: float32 (H, W) ground-likeness in [0, 1] and a bool
        (H, W) mask of top edges.
    """
    d = depth.astype(np.float32)
    fall = np.zeros_like(d)
    fall[:-1] = (d[:-1] - d[1:]) / np.maximum(d[:-1], 1e-3) * d.shape[0]
    ground = np.clip((fall - 0.3) / 0.7, 0, 1)
    edges = (d[:-1] - d[1:]) > 0.5 * np.maximum(d[1:], 1.0)
    tops = np.zeros(d.shape, bool)
    tops[1:] = edges
    return ground, tops


def fog(img: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
        severity: float = DEFAULT_SEVERITY['fog']) -> np.ndarray:
    """Fog by atmospheric scattering (Koschmieder's law, 1924).

    ``I = J t + A (1 - t)`` with transmission ``t = exp(-beta d)``: far pixels move towards the
    airlight ``A``. ``beta = 0.1 * severity`` per metre (meteorological visibility
    ``3.912 / beta``: 130 m at the default 0.3, 39 m at 1). ``A`` is a light grey, slightly
    brighter at the top and with a faint low-frequency variation, as in real fog.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB clean image.
        depth (np.ndarray): (H, W) depth in metres.
        rng (np.random.Generator): Source of randomness.
        severity (float): In (0, 1]. Defaults to 0.3.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB foggy image.
    """
    _check(img, depth, severity, 'fog')
    height, width = depth.shape
    base = rng.uniform(0.72, 0.9)
    tint = np.array([-0.015, 0.0, 0.02], np.float32) + rng.uniform(-0.01, 0.01, 3)
    rows = np.linspace(0.04, -0.04, height, dtype=np.float32)[:, None]
    field = 1.0 + rows + 0.03 * _smooth_noise(rng, height, width, 4)
    airlight = np.clip((base + tint)[None, None] * field[..., None], 0, 1)
    out = _haze(img.astype(np.float32) / 255.0, depth, 0.1 * severity, airlight)
    return _to_uint8(out)


def _lamps(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """3D positions (x right, y down, z forward; metres from the camera) of light sources."""
    if kind == 'street':
        x = rng.choice([-1.0, 1.0], n) * rng.uniform(3.0, 9.0, n)
        y = 1.5 - rng.uniform(4.5, 8.0, n)
        z = rng.uniform(4.0, 60.0, n)
    else:  # a pair of headlights per car
        cx, z = rng.uniform(-4.0, 4.0, n), rng.uniform(8.0, 70.0, n)
        x = np.concatenate([cx - 0.7, cx + 0.7])
        y, z = np.full(2 * n, 0.8), np.concatenate([z, z])
    return np.stack([x, y, z], 1)


def night(img: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
          severity: float = DEFAULT_SEVERITY['night']) -> np.ndarray:
    """Night: the scene lit by a dim bluish ambient and a few street lamps, seen by a noisy sensor.

    The image is linearised (gamma 2.2) and multiplied by an illumination map: a bluish ambient
    of ``0.2 (1 - 0.9 severity)`` plus sodium-orange or white street lamps whose light falls off
    with the 3D distance ``r`` as ``1 / (1 + (r / R)^3)`` (pixels are back-projected with the
    depth and a guessed camera: focal = 1.1 width, horizon at 0.45 height). Unoccluded lamps add
    a glow, and so do oncoming headlights where the depth map has a surface (a car, the road) at
    their depth. Shot and read noise are added in linear space, then the gamma is reapplied.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB clean image.
        depth (np.ndarray): (H, W) depth in metres.
        rng (np.random.Generator): Source of randomness.
        severity (float): In (0, 1]. Defaults to 0.8.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB night image.
    """
    scale = _check(img, depth, severity, 'night')
    height, width = depth.shape
    focal, cx, cy = 1.1 * width, width / 2.0, 0.45 * height
    linear = (img.astype(np.float32) / 255.0)**2.2
    d = np.minimum(depth.astype(np.float32), SKY_DEPTH)
    x3 = (np.arange(width, dtype=np.float32) + 0.5 - cx)[None, :] * d / focal
    y3 = (np.arange(height, dtype=np.float32) + 0.5 - cy)[:, None] * d / focal
    ambient = 0.2 * (1.0 - 0.9 * severity)
    light = np.empty_like(linear)
    light[:] = ambient * np.array([0.7, 0.85, 1.2], np.float32)
    street = _lamps(rng, int(rng.integers(2, 7)), 'street')
    colours = np.where(rng.random((len(street), 1)) < 0.6, [[1.0, 0.6, 0.28]],
                       [[1.0, 0.95, 0.88]]).astype(np.float32)
    for (x, y, z), colour in zip(street, colours):
        dist = np.sqrt((x3 - x)**2 + (y3 - y)**2 + (d - z)**2)
        pool = 1.0 / (1.0 + (dist / rng.uniform(3.0, 6.0))**3)  # a pool of light, no long tail
        light += colour * (rng.uniform(0.35, 0.8) * pool)[..., None]
    out = linear * light
    heads = _on_surface(_lamps(rng, int(rng.poisson(2.0)), 'head'), depth, focal, cx, cy)
    glows = np.concatenate([street, heads])
    glow_colours = np.concatenate([colours, np.tile([[1.0, 0.97, 0.9]], (len(heads), 1))])
    out += _glows(glows, glow_colours.astype(np.float32), depth, focal, cx, cy, scale)
    out = np.maximum(out, 0)
    noise = rng.standard_normal(out.shape, dtype=np.float32)
    out += noise * np.sqrt(out * 0.002 * severity + (0.004 * severity)**2)
    return _to_uint8(np.maximum(out, 0)**(1 / 2.2))


def _on_surface(lamps: np.ndarray, depth: np.ndarray, focal: float, cx: float,
                cy: float) -> np.ndarray:
    """Keep the lights that sit on something at their depth (a car, the road), not in mid-air."""
    height, width = depth.shape
    keep = []
    for x, y, z in lamps:
        col, row = int(cx + focal * x / z), int(cy + focal * y / z)
        keep.append(0 <= col < width and 0 <= row < height
                    and abs(float(depth[row, col]) - z) < 0.3 * z)
    return lamps[np.array(keep, bool)] if len(lamps) else lamps


def _glows(lamps: np.ndarray, colours: np.ndarray, depth: np.ndarray, focal: float, cx: float,
           cy: float, scale: float) -> np.ndarray:
    """Additive glow of each light source that is in view and not hidden behind something."""
    height, width = depth.shape
    out = np.zeros((height, width, 3), np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    for (x, y, z), colour in zip(lamps, colours):
        col, row = cx + focal * x / z, cy + focal * y / z
        if not (0 <= col < width and 0 <= row < height):
            continue
        if depth[int(row), int(col)] < z - 2.0:  # occluded
            continue
        sigma = max(0.25 * focal / z, 0.8 * scale)
        r2 = (xs - col)**2 + (ys - row)**2
        out += colour * (np.exp(-r2 / (2 * sigma**2)) + 0.15 * np.exp(-r2 / (18 * sigma**2)))[
            ..., None]
    return out


def rain(img: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
         severity: float = DEFAULT_SEVERITY['rain']) -> np.ndarray:
    """Rain: a grey veil, a dull and slightly blurred image, wet ground, streaks and drops.

    Recipe: a light haze from the falling rain (Koschmieder with ``beta = 0.015 severity``
    towards a mid grey); contrast and brightness lowered for the overcast sky; the wet ground
    (surfaces facing up, found from depth) darker, and mirroring the grey sky at grazing angles;
    a Gaussian blur; bright slanted
    streaks (one wind direction per image) blended over the image; and a few out-of-focus
    drops on the lens.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB clean image.
        depth (np.ndarray): (H, W) depth in metres.
        rng (np.random.Generator): Source of randomness.
        severity (float): In (0, 1]. Defaults to 0.6.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB rainy image.
    """
    scale = _check(img, depth, severity, 'rain')
    height, width = depth.shape
    grey = np.float32(rng.uniform(0.5, 0.62))
    out = _haze(img.astype(np.float32) / 255.0, depth, 0.015 * severity, grey)
    mean = out.mean((0, 1), keepdims=True)
    out = (out - mean) * (1 - 0.35 * severity) + mean * (1 - 0.3 * severity)
    out = _wet_ground(out, depth, severity, grey * (1 - 0.2 * severity))
    out = cv2.GaussianBlur(out, (0, 0), (0.4 + 0.8 * severity) * scale)
    out = _blend_streaks(rng, out, severity, scale)
    out = _lens_drops(rng, out, severity, scale)
    return _to_uint8(out)


def _wet_ground(rgb: np.ndarray, depth: np.ndarray, severity: float,
                sky: np.float32) -> np.ndarray:
    """Wet ground: darker where seen from above, a mirror of the grey sky at grazing angles."""
    ground, _ = _upward(depth)
    wet = severity * ground
    sheen = 1.0 - np.exp(-depth.astype(np.float32) / 25.0)  # Fresnel: grazing views reflect
    dark = rgb * (1 - 0.35 * wet)[..., None]
    return dark + (sky - dark) * (0.45 * wet * sheen)[..., None]


def _blend_streaks(rng: np.random.Generator, rgb: np.ndarray, severity: float,
                   scale: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    n = int(severity * 0.008 * height * width / scale**2)
    angle = rng.uniform(-0.3, 0.3) + rng.normal(0, 0.04, n)
    length = rng.uniform(0.04, 0.12, n) * height
    x0, y0 = rng.uniform(-0.1 * width, 1.1 * width, n), rng.uniform(-0.1 * height, height, n)
    x1, y1 = x0 + np.sin(angle) * length, y0 + np.cos(angle) * length
    layer = np.zeros((height, width), np.float32)
    lines = np.stack([np.stack([x0, y0], 1), np.stack([x1, y1], 1)], 1)
    for part, value in zip(np.array_split(np.round(lines * 8).astype(np.int32), 3),
                           (0.35, 0.6, 0.9)):
        cv2.polylines(layer, list(part), False, value, max(int(round(scale)), 1), cv2.LINE_AA, 3)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.5 * scale)[..., None]
    alpha = (0.2 + 0.2 * severity) * layer
    return rgb * (1 - alpha) + 0.85 * alpha


def _lens_drops(rng: np.random.Generator, rgb: np.ndarray, severity: float,
                scale: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    n = int(rng.poisson(4 * severity))
    if n == 0:
        return rgb
    blurred = cv2.GaussianBlur(rgb, (0, 0), 5 * scale) * 1.08 + 0.03
    mask = np.zeros((height, width), np.float32)
    for _ in range(n):
        radius = rng.uniform(0.03, 0.08) * height
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        cv2.ellipse(mask, centre, (int(radius), int(radius * rng.uniform(0.8, 1.2))), 0, 0, 360,
                    1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5 * scale)[..., None]
    return rgb * (1 - mask) + blurred * mask


def snow(img: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
         severity: float = DEFAULT_SEVERITY['snow']) -> np.ndarray:
    """Snow: white ground and tops of objects, a bright cold haze, and falling flakes.

    Recipe: surfaces facing up (the ground and the top edges of objects, found from depth)
    are covered in patchy snow whose coverage grows with severity; the whole image is
    whitened, lowered in contrast and tinted cold; a bright haze (Koschmieder with
    ``beta = 0.012 severity``) hides the distance; three layers of flakes (far and small to
    near, large and blurred, stretched by their fall) are screened over it.

    Args:
        img (np.ndarray): (H, W, 3) uint8 RGB clean image.
        depth (np.ndarray): (H, W) depth in metres.
        rng (np.random.Generator): Source of randomness.
        severity (float): In (0, 1]. Defaults to 0.5.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB snowy image.
    """
    scale = _check(img, depth, severity, 'snow')
    height, width = depth.shape
    rgb = img.astype(np.float32) / 255.0
    ground, tops = _upward(depth)
    caps = cv2.dilate(tops.astype(np.uint8), np.ones((max(int(2 * scale), 2), 1), np.uint8),
                      anchor=(0, 0))
    patches = _smooth_noise(rng, height, width, 24) + 0.5 * _smooth_noise(rng, height, width, 6)
    cover = np.maximum(ground, caps) * np.clip(0.35 + 0.6 * severity + 0.35 * patches, 0, 1)
    luminance = rgb.mean(2, keepdims=True)
    white = np.array([0.9, 0.92, 0.96], np.float32) * (0.78 + 0.22 * luminance)
    out = rgb * (1 - cover[..., None]) + white * cover[..., None]
    out = out * (1 - 0.2 * severity) + 0.2 * severity * 0.85
    out = _haze(out, depth, 0.012 * severity, np.array([0.82, 0.84, 0.88], np.float32))
    out *= np.array([0.96, 0.99, 1.04], np.float32)
    return _to_uint8(_flakes(rng, out, severity, scale))


def _flakes(rng: np.random.Generator, rgb: np.ndarray, severity: float,
            scale: float) -> np.ndarray:
    height, width = rgb.shape[:2]
    layer = np.zeros(height * width, np.float32)
    total = np.zeros((height, width), np.float32)
    for density, sigma, strength in ((0.02, 0.5, 0.6), (0.004, 1.1, 2.5), (0.0006, 2.4, 9.0)):
        n = int(severity * density * height * width / scale**2)
        index = rng.integers(0, height * width, n)
        layer[:] = np.bincount(index, rng.uniform(0.5, 1.0, n) * strength,
                               minlength=height * width)
        s = sigma * scale
        total += cv2.GaussianBlur(layer.reshape(height, width), (0, 0), s, sigmaY=1.6 * s)
    total = np.clip(total, 0, 1)[..., None]
    return rgb + (0.97 - rgb) * total


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


_CONDITION_FNS: dict[str, Callable[..., np.ndarray]] = {
    'fog': fog, 'night': night, 'rain': rain, 'snow': snow}


def apply_condition(name: str, img: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
                    severity: float | None = None) -> np.ndarray:
    """Render the condition ``name`` onto ``img``.

    Args:
        name (str): One of :data:`CONDITIONS`.
        img (np.ndarray): (H, W, 3) uint8 RGB clean image.
        depth (np.ndarray): (H, W) depth in metres.
        rng (np.random.Generator): Source of randomness.
        severity (float, optional): In (0, 1]. Defaults to None: the condition's entry in
            :data:`DEFAULT_SEVERITY`.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB image.
    """
    if name not in _CONDITION_FNS:
        raise ValueError(f'unknown weather condition {name!r}; valid names are '
                         f'{", ".join(CONDITIONS)}')
    if severity is None:
        severity = DEFAULT_SEVERITY[name]
    return _CONDITION_FNS[name](img, depth, rng, severity)


def flat_ground_depth(height: int, width: int, horizon: float = 0.45, cam_height: float = 1.5,
                      focal: float | None = None) -> np.ndarray:
    """A depth guess for a driving image without a depth map: flat ground, sky above.

    Args:
        height (int): Image height.
        width (int): Image width.
        horizon (float): Horizon row as a fraction of the height. Defaults to 0.45.
        cam_height (float): Camera height above the ground, metres. Defaults to 1.5.
        focal (float, optional): Focal length in pixels. Defaults to None: 1.1 * width.

    Returns:
        np.ndarray: (height, width) float32 depth in metres; :data:`SKY_DEPTH` above the
        horizon.
    """
    focal = 1.1 * width if focal is None else focal
    rows = np.arange(height, dtype=np.float32) + 0.5 - horizon * height
    with np.errstate(divide='ignore'):
        z = np.where(rows > 0, focal * cam_height / rows, SKY_DEPTH)
    z = np.minimum(z, SKY_DEPTH).astype(np.float32)
    return np.repeat(z[:, None], width, 1)


@TRANSFORMS.register_module()
class ApplyWeather(BaseTransform):
    """Render an ACDC condition onto ``results['img']`` inside an MMSeg pipeline.

    Uses ``results['depth']`` ((H, W) metres) when the pipeline has one, else
    :func:`flat_ground_depth`. The random state is derived from ``seed`` and the image path (or
    the sample index), so the same image always gets the same weather.

    Required keys: ``img``. Optional keys: ``depth``, ``img_path``, ``sample_idx``.
    Modified keys: ``img``.

    Args:
        condition (str): One of :data:`CONDITIONS`.
        severity (float, optional): In (0, 1]. Defaults to None: :data:`DEFAULT_SEVERITY`.
        seed (int, optional): Base seed. Defaults to 0. None draws fresh randomness per call.
        channel_order (str): Channel order of ``results['img']``: ``'bgr'`` (what
            ``LoadImageFromFile`` gives) or ``'rgb'``. Defaults to ``'bgr'``.
    """

    def __init__(self, condition: str, severity: float | None = None, seed: int | None = 0,
                 channel_order: str = 'bgr') -> None:
        if condition not in CONDITIONS:
            raise ValueError(f'ApplyWeather: unknown condition {condition!r}; valid names are '
                             f'{", ".join(CONDITIONS)}')
        if severity is not None and not 0.0 < severity <= 1.0:
            raise ValueError(f'ApplyWeather: severity must be in (0, 1], got {severity}')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f"ApplyWeather: channel_order must be 'bgr' or 'rgb', got "
                             f'{channel_order!r}')
        self.condition, self.severity, self.seed = condition, severity, seed
        self.channel_order = channel_order

    def _rng(self, results: dict) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        key = str(results.get('img_path', results.get('sample_idx', '')))
        return np.random.default_rng([self.seed, zlib.crc32(key.encode())])

    def transform(self, results: dict) -> dict:
        """Apply the condition to ``results['img']``."""
        img = results['img']
        depth = results.get('depth')
        if depth is None:
            depth = flat_ground_depth(*img.shape[:2])
        rgb = img[..., ::-1] if self.channel_order == 'bgr' else img
        out = apply_condition(self.condition, np.ascontiguousarray(rgb), depth, self._rng(results),
                              self.severity)
        results['img'] = np.ascontiguousarray(out[..., ::-1]) if self.channel_order == 'bgr' \
            else out
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(condition={self.condition!r}, '
                f'severity={self.severity}, seed={self.seed}, '
                f'channel_order={self.channel_order!r})')
