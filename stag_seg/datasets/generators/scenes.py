"""Procedural street scenes with Cityscapes labels and metric depth, seen from a driving camera.

The embedded stand-in for Cityscapes: small, fast and deterministic, so that the Cityscapes→ACDC
protocol (docs/design.md, "Protocols") can run end to end on a laptop CPU. A scene is a flat
ground plane
seen by a pinhole camera at driver height: a road converging to the vanishing point, lane marks,
kerbs and sidewalks, terrain verges, side streets, building facades with windows, a distant
skyline, trees, street lamps, signs, traffic lights, cars (with their visible side) and people.

Geometry: the camera looks along +Z from height ``cam_height`` above the ground, ``X`` points
right. A ground pixel in image row ``v`` below the horizon is at depth ``Z = f * cam_height /
(v - horizon)``. Facades are vertical planes parallel to the road; each of their pixels takes the
depth of its ground contact in that column. Billboard objects (trees, poles, cars, people) take
the depth of their ground contact. Everything is z-buffered and drawn far to near (painter's
order), so occlusion is correct. Depth is the z-depth in metres (distance along the optical axis,
what stereo depth gives); the sky has the finite depth :data:`SKY_DEPTH`.

Appearance is randomised per scene and per object (colours, sizes, layout, texture noise, shading,
exposure), so a network has to learn shape and context rather than one colour per class, while
each class keeps a recognisable character (a bluish-grey bright sky on top, grey road, green
vegetation, windows on buildings).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

__all__ = ['SKY_DEPTH', 'IGNORE_INDEX', 'SCENE_CLASSES', 'render_scene']

#: Depth given to sky pixels, in metres: far beyond any object, yet finite.
SKY_DEPTH = 1000.0
#: Label of pixels to ignore (the ego vehicle's bonnet, as in Cityscapes' ``labelTrainIds``).
IGNORE_INDEX = 255

# Cityscapes train ids of the classes the generator draws.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = range(8)
VEGETATION, TERRAIN, SKY, PERSON, CAR = 8, 9, 10, 11, 13

#: Train ids that :func:`render_scene` can produce (besides :data:`IGNORE_INDEX`).
SCENE_CLASSES = (ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN,
                 VEGETATION, TERRAIN, SKY, PERSON, CAR)

# Texture noise amplitude per train id: (fine, medium, coarse) relative intensity variation.
_NOISE_AMPLITUDE = np.full((256, 3), 0.03, np.float32)
_NOISE_AMPLITUDE[[ROAD, SIDEWALK]] = (0.07, 0.05, 0.06)
_NOISE_AMPLITUDE[[BUILDING, WALL]] = (0.05, 0.04, 0.07)
_NOISE_AMPLITUDE[VEGETATION] = (0.16, 0.14, 0.12)
_NOISE_AMPLITUDE[TERRAIN] = (0.12, 0.10, 0.16)
_NOISE_AMPLITUDE[SKY] = (0.008, 0.01, 0.02)

_CAR_COLOURS = np.array([[0.85, 0.86, 0.87], [0.6, 0.62, 0.64], [0.12, 0.12, 0.13],
                         [0.35, 0.36, 0.38], [0.1, 0.17, 0.38], [0.55, 0.08, 0.07],
                         [0.5, 0.52, 0.48], [0.2, 0.3, 0.22]], np.float32)
_FACADE_COLOURS = np.array([[0.78, 0.72, 0.6], [0.85, 0.83, 0.78], [0.55, 0.55, 0.56],
                            [0.6, 0.33, 0.25], [0.72, 0.6, 0.45], [0.62, 0.66, 0.7],
                            [0.42, 0.4, 0.38], [0.8, 0.76, 0.66]], np.float32)


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera at ``cam_height`` metres above a flat ground, looking along +Z."""
    height: int
    width: int
    focal: float
    cx: float
    horizon: float
    cam_height: float

    def to_image(self, x: float | np.ndarray, up: float | np.ndarray,
                 z: float | np.ndarray) -> tuple:
        """Image position (column, row) of the point ``x`` metres right, ``up`` above ground."""
        return self.cx + self.focal * x / z, self.horizon + self.focal * (self.cam_height - up) / z


class _Canvas:
    """Colour (float RGB in [0, 1]), label and depth images with a z-tested write."""

    def __init__(self, height: int, width: int) -> None:
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.full((height, width), SKY, np.uint8)
        self.depth = np.full((height, width), SKY_DEPTH, np.float32)

    def paint(self, top: int, left: int, mask: np.ndarray, depth: float | np.ndarray,
              rgb: np.ndarray, label: int | np.ndarray) -> None:
        """Write a local patch at (``top``, ``left``) where ``mask`` holds and it is nearer."""
        height, width = self.label.shape
        t, lft = max(top, 0), max(left, 0)
        b, r = min(top + mask.shape[0], height), min(left + mask.shape[1], width)
        if b <= t or r <= lft:
            return
        local = (slice(t - top, b - top), slice(lft - left, r - left))
        region = (slice(t, b), slice(lft, r))
        depth = np.broadcast_to(np.asarray(depth, np.float32), mask.shape)[local]
        ok = mask[local] & (depth < self.depth[region])
        self.depth[region][ok] = depth[ok]
        self.label[region][ok] = (label[local][ok] if isinstance(label, np.ndarray) else label)
        self.rgb[region][ok] = rgb[local][ok] if rgb.ndim == 3 else rgb


class _Sprite:
    """A local drawing surface for one object, in image pixel coordinates (sub-pixel cv2)."""
    _SHIFT = 3  # cv2 fixed-point bits: coordinates are drawn with 1/8 pixel precision

    def __init__(self, canvas: _Canvas, x0: float, y0: float, x1: float, y1: float) -> None:
        height, width = canvas.label.shape
        self.left, self.top = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
        right, bottom = min(int(math.ceil(x1)) + 1, width), min(int(math.ceil(y1)) + 1, height)
        shape = (max(bottom - self.top, 0), max(right - self.left, 0))
        self.empty = shape[0] == 0 or shape[1] == 0
        self.mask = np.zeros(shape, np.uint8)
        self.label = np.zeros(shape, np.uint8)
        self.rgb = np.zeros(shape + (3, ), np.float32)

    def _fixed(self, points: np.ndarray) -> np.ndarray:
        offset = np.array([self.left, self.top], np.float64)
        return np.round((np.asarray(points, np.float64) - offset) * (1 << self._SHIFT)).astype(
            np.int32)

    def polygon(self, points: np.ndarray, label: int, rgb: np.ndarray) -> None:
        """Fill the polygon ``points`` ((N, 2) image x, y)."""
        if self.empty:
            return
        pts = [self._fixed(points).reshape(-1, 1, 2)]
        colour = tuple(float(c) for c in rgb)
        cv2.fillPoly(self.mask, pts, 1, cv2.LINE_8, self._SHIFT)
        cv2.fillPoly(self.label, pts, int(label), cv2.LINE_8, self._SHIFT)
        cv2.fillPoly(self.rgb, pts, colour, cv2.LINE_8, self._SHIFT)

    def rect(self, x0: float, y0: float, x1: float, y1: float, label: int,
             rgb: np.ndarray) -> None:
        """Fill the axis-aligned rectangle between (x0, y0) and (x1, y1), at least 1 px wide."""
        if x1 - x0 < 1.0:
            x0, x1 = (x0 + x1) / 2 - 0.5, (x0 + x1) / 2 + 0.5
        self.polygon(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), label, rgb)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, label: int,
                rgb: np.ndarray) -> None:
        """Fill the axis-aligned ellipse centred on (cx, cy) with radii (rx, ry)."""
        if self.empty:
            return
        centre = tuple(int(v) for v in self._fixed([cx, cy]))
        axes = tuple(max(int(round(v * (1 << self._SHIFT))), 1) for v in (rx, ry))
        colour = tuple(float(c) for c in rgb)
        for image, value in ((self.mask, 1), (self.label, int(label)), (self.rgb, colour)):
            cv2.ellipse(image, centre, axes, 0, 0, 360, value, -1, cv2.LINE_8, self._SHIFT)

    def commit(self, canvas: _Canvas, depth: float) -> None:
        """Z-test the drawn pixels into ``canvas`` at the constant ``depth``."""
        if not self.empty:
            canvas.paint(self.top, self.left, self.mask.astype(bool), depth, self.rgb, self.label)


@dataclass
class _Street:
    """Lateral layout of the street, in metres from the camera (sides: -1 left, +1 right)."""
    road_left: float
    road_right: float
    lane_marks: list[float]
    lanes: list[tuple[float, int]]  # lane centre X, +1 driving away from the camera, -1 oncoming
    verge: dict[int, float]  # terrain strip width between road and sidewalk
    sidewalk: dict[int, float]  # sidewalk width
    yard: dict[int, float]  # strip between sidewalk and building line
    yard_class: dict[int, int]  # TERRAIN or SIDEWALK
    crossings: list[tuple[float, float]]  # Z ranges of side streets
    z_back: float  # depth of the skyline backdrop

    def edge(self, side: int) -> float:
        """Distance from the camera to the road edge on ``side``."""
        return self.road_right if side > 0 else -self.road_left

    def kerb_outer(self, side: int) -> float:
        """Distance to the outer edge of the sidewalk on ``side``."""
        return self.edge(side) + self.verge[side] + self.sidewalk[side]

    def building_line(self, side: int) -> float:
        """Distance to the building line on ``side``."""
        return self.kerb_outer(side) + self.yard[side]

    def in_crossing(self, z0: float, z1: float) -> bool:
        """Whether the Z range [z0, z1] overlaps a side street."""
        return any(z0 < c1 and z1 > c0 for c0, c1 in self.crossings)


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _jitter(rng: np.random.Generator, rgb: np.ndarray, amount: float = 0.06) -> np.ndarray:
    return np.clip(rgb * _u(rng, 0.85, 1.15) + rng.uniform(-amount, amount, 3), 0, 1).astype(
        np.float32)


def _make_camera(rng: np.random.Generator, height: int, width: int) -> _Camera:
    return _Camera(height=height, width=width, focal=width * _u(rng, 0.95, 1.25),
                   cx=width * _u(rng, 0.42, 0.58), horizon=height * _u(rng, 0.38, 0.5),
                   cam_height=_u(rng, 1.25, 1.7))


def _make_street(rng: np.random.Generator) -> _Street:
    lane_width = _u(rng, 2.9, 3.6)
    n_lanes = int(rng.choice([2, 2, 3, 4]))
    own_lane = int(rng.integers(n_lanes // 2, n_lanes))
    road_left = -(own_lane + _u(rng, 0.3, 0.7)) * lane_width
    lanes = [(road_left + (i + 0.5) * lane_width, 1 if i >= n_lanes // 2 else -1)
             for i in range(n_lanes)]
    sides = (-1, 1)
    crossings = []
    if rng.random() < 0.35:
        z0 = _u(rng, 15, 45)
        crossings.append((z0, z0 + _u(rng, 8, 14)))
    return _Street(
        road_left=road_left, road_right=road_left + n_lanes * lane_width,
        lane_marks=[road_left + i * lane_width for i in range(1, n_lanes)], lanes=lanes,
        verge={s: (_u(rng, 0.6, 2.0) if rng.random() < 0.3 else 0.0) for s in sides},
        sidewalk={s: _u(rng, 1.8, 4.5) for s in sides},
        yard={s: (_u(rng, 0.5, 6.0) if rng.random() < 0.5 else 0.0) for s in sides},
        yard_class={s: (TERRAIN if rng.random() < 0.7 else SIDEWALK) for s in sides},
        crossings=crossings, z_back=_u(rng, 60, 150))


# ------------------------------------------------------------------------------------------
# Sky and ground
# ------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Zero-mean, unit-ish noise with features about ``cell`` pixels wide."""
    small = rng.standard_normal((max(height // cell, 1) + 2, max(width // cell, 1) + 2))
    return cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def _draw_sky(rng: np.random.Generator, cam: _Camera, canvas: _Canvas) -> None:
    overcast = rng.random() < 0.4
    if overcast:
        grey = _u(rng, 0.68, 0.85)
        top = np.array([grey, grey + 0.02, grey + 0.06], np.float32)
    else:
        top = np.array([_u(rng, 0.3, 0.5), _u(rng, 0.5, 0.65), _u(rng, 0.75, 0.95)], np.float32)
    low = np.clip(top + _u(rng, 0.1, 0.25), 0, 1)
    n_rows = min(int(math.ceil(cam.horizon)) + 1, cam.height)  # the ground covers the rest
    rows = np.clip(np.arange(n_rows, dtype=np.float32) / max(cam.horizon, 1.0), 0, 1)
    ramp = rows[:, None, None]**0.7
    sky = top * (1 - ramp) + low * ramp
    clouds = _smooth_noise(rng, n_rows, cam.width, 12)
    cover = np.clip(clouds - _u(rng, 0.0, 1.2), 0, 1)[..., None] * _u(rng, 0.2, 0.45)
    canvas.rgb[:n_rows] = sky + (0.95 - sky) * cover


def _ground_palette(rng: np.random.Generator) -> np.ndarray:
    palette = np.zeros((256, 3), np.float32)
    grey = _u(rng, 0.28, 0.48)
    palette[ROAD] = _jitter(rng, np.array([grey, grey, grey * 1.04]), 0.02)
    pave = _u(rng, 0.5, 0.72)
    tint = rng.choice([0, 1, 2])  # grey, beige or reddish paving
    base = [np.array([pave, pave, pave]), np.array([pave, pave * 0.93, pave * 0.82]),
            np.array([pave, pave * 0.75, pave * 0.72])][tint]
    palette[SIDEWALK] = _jitter(rng, base, 0.03)
    palette[TERRAIN] = _jitter(rng, np.array([_u(rng, 0.3, 0.55), _u(rng, 0.45, 0.6),
                                              _u(rng, 0.15, 0.3)]), 0.04)
    return palette


def _draw_ground(rng: np.random.Generator, cam: _Camera, street: _Street,
                 canvas: _Canvas) -> None:
    first = int(math.floor(cam.horizon)) + 1
    if first >= cam.height:
        return
    rows = np.arange(first, cam.height, dtype=np.float32) + 0.5
    z = (cam.focal * cam.cam_height / (rows - cam.horizon))[:, None]
    x = (np.arange(cam.width, dtype=np.float32) + 0.5 - cam.cx)[None, :] * z / cam.focal
    label = np.full(x.shape, ROAD, np.uint8)
    kerb = np.zeros(x.shape, bool)
    for side in (-1, 1):
        lateral = x * side
        edge, verge = street.edge(side), street.verge[side]
        label[(lateral > edge) & (lateral <= edge + verge)] = TERRAIN
        label[(lateral > edge + verge) & (lateral <= street.kerb_outer(side))] = SIDEWALK
        label[lateral > street.kerb_outer(side)] = street.yard_class[side]
        kerb |= (lateral > edge + verge) & (lateral < edge + verge + 0.25)
    crossing = np.zeros_like(z, bool)
    for z0, z1 in street.crossings:
        crossing |= (z > z0) & (z < z1)
    crossing = np.broadcast_to(crossing, x.shape)
    label[crossing] = ROAD
    rgb = _ground_palette(rng)[label]
    _ground_patterns(rng, street, x, np.broadcast_to(z, x.shape), label, kerb & ~crossing, rgb)
    canvas.rgb[first:] = rgb
    canvas.label[first:] = label
    canvas.depth[first:] = np.broadcast_to(z, x.shape)


def _ground_patterns(rng: np.random.Generator, street: _Street, x: np.ndarray, z: np.ndarray,
                     label: np.ndarray, kerb: np.ndarray, rgb: np.ndarray) -> None:
    """Lane marks, crosswalks, paving joints and kerbs, drawn on the ground colours in place."""
    road, paved = label == ROAD, label == SIDEWALK
    paint = np.array([0.88, 0.88, 0.85], np.float32)
    period, duty = _u(rng, 6, 12), _u(rng, 0.3, 0.6)
    dashes = (z / period) % 1.0 < duty
    for mark in street.lane_marks:
        rgb[road & dashes & (np.abs(x - mark) < 0.08)] = paint
    for edge in (street.road_left + 0.25, street.road_right - 0.25):
        if rng.random() < 0.5:
            rgb[road & (np.abs(x - edge) < 0.08)] = paint
    for z0, _ in street.crossings:
        zebra = (z > z0 - 4.0) & (z < z0 - 1.0) & ((x / 1.0) % 1.0 < 0.5)
        rgb[road & zebra & (x > street.road_left) & (x < street.road_right)] = paint
    tile = _u(rng, 0.3, 0.8)
    joints = paved & (((z / tile) % 1.0 < 0.08) | ((x / tile) % 1.0 < 0.08))
    rgb[joints] *= 0.86
    rgb[kerb] = np.clip(rgb[kerb] * 1.2 + 0.05, 0, 1)
    if rng.random() < 0.5:  # a building's shadow over one side of the street
        side = int(rng.choice([-1, 1]))
        rgb[x * side > _u(rng, 0, street.edge(side) + 3)] *= _u(rng, 0.55, 0.8)


# ------------------------------------------------------------------------------------------
# Vertical planes: facades, walls, fences, hedges, the skyline
# ------------------------------------------------------------------------------------------


class _PlanePatch(NamedTuple):
    """The pixels of a vertical plane parallel to the road, as a patch of the image."""
    top: int  # patch origin in the image
    left: int
    depth: np.ndarray  # (h, w) depth of each pixel, also its coordinate along the plane
    up: np.ndarray  # (h, w) height above the ground, NaN outside the plane


def _side_plane(cam: _Camera, x: float, z0: float, z1: float, bottom: float,
                top: float) -> _PlanePatch | None:
    """Pixels of the vertical plane at lateral ``x``, depths ``z0``..``z1``, heights
    ``bottom``..``top`` (metres); None if it is out of view."""
    z0 = max(z0, 0.5)
    u_near, u_far = (cam.cx + cam.focal * x / z for z in (z0, z1))
    c0 = max(int(math.floor(min(u_near, u_far))), 0)
    c1 = min(int(math.ceil(max(u_near, u_far))), cam.width)
    if c1 <= c0:
        return None
    du = np.arange(c0, c1, dtype=np.float32) + 0.5 - cam.cx
    with np.errstate(divide='ignore', invalid='ignore'):
        zc = np.where(du * x > 0, cam.focal * x / du, np.inf)
    zc = np.where((zc >= z0) & (zc <= z1), zc, np.nan)
    if np.all(np.isnan(zc)):
        return None
    v_top = np.nanmin(cam.to_image(0.0, top, zc)[1])
    v_bot = np.nanmax(cam.to_image(0.0, bottom, zc)[1])
    r0, r1 = max(int(math.floor(v_top)), 0), min(int(math.ceil(v_bot)) + 1, cam.height)
    if r1 <= r0:
        return None
    rows = (np.arange(r0, r1, dtype=np.float32) + 0.5)[:, None]
    up = cam.cam_height - (rows - cam.horizon) * zc[None, :] / cam.focal
    up = np.where((up >= bottom) & (up <= top), up, np.nan)
    return _PlanePatch(r0, c0, np.broadcast_to(zc[None, :], up.shape), up)


def _facade_rgb(rng: np.random.Generator, along: np.ndarray, up: np.ndarray, top: float,
                shade: float) -> np.ndarray:
    """A building facade: wall colour, floors of windows, a ground-floor band and a cornice."""
    wall = _jitter(rng, _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))]) * shade
    glass = np.array([_u(rng, 0.08, 0.25), _u(rng, 0.1, 0.28), _u(rng, 0.14, 0.35)], np.float32)
    floor, spacing = _u(rng, 2.9, 3.8), _u(rng, 1.8, 3.5)
    ground_floor = _u(rng, 3.0, 4.5)
    width, tall = _u(rng, 0.3, 0.6), _u(rng, 0.35, 0.6)
    level, column = (up - ground_floor) / floor, along / spacing
    window = ((level % 1.0 > 0.25) & (level % 1.0 < 0.25 + tall) & (up > ground_floor)
              & (up < top - 0.8) & (np.abs(column % 1.0 - 0.5) < width / 2))
    pane = 0.7 + 0.6 * ((np.floor(level) * 7.3 + np.floor(column) * 3.1) % 1.0)
    rgb = np.empty(up.shape + (3, ), np.float32)
    rgb[:] = wall
    rgb[window] = glass * pane[window][:, None]
    shop = up < ground_floor
    if rng.random() < 0.6:
        rgb[shop] = _jitter(rng, glass * 1.5 + 0.1) * shade
    else:
        rgb[shop] *= 0.85
    rgb[(up > top - 0.6) | (np.abs(up - ground_floor) < 0.15)] *= 1.15
    rgb *= (0.82 + 0.18 * np.clip(up / max(top, 1.0), 0, 1))[..., None]
    return rgb


def _draw_plane(canvas: _Canvas, plane: _PlanePatch, mask: np.ndarray, rgb: np.ndarray,
                label: int) -> None:
    canvas.paint(plane.top, plane.left, mask, plane.depth, rgb, label)


def _draw_building(rng: np.random.Generator, cam: _Camera, canvas: _Canvas, side: int,
                   x: float, z0: float, z1: float, top: float, shade: float) -> None:
    plane = _side_plane(cam, side * x, z0, z1, 0.0, top)
    if plane is None:
        return
    inside = ~np.isnan(plane.up)
    rgb = _facade_rgb(rng, plane.depth - z0, np.nan_to_num(plane.up), top, shade)
    _draw_plane(canvas, plane, inside, rgb, BUILDING)
    # The end wall facing the camera, seen through the gap in front of the building.
    u0, v_bot = cam.to_image(side * x, 0.0, z0)
    u1, v_top = cam.to_image(side * (x + _u(rng, 8, 20)), top, z0)
    sprite = _Sprite(canvas, min(u0, u1), v_top, max(u0, u1), v_bot)
    colour = np.clip(rgb[inside].mean(0) * 0.8 if inside.any() else np.full(3, 0.5), 0, 1)
    sprite.rect(min(u0, u1), v_top, max(u0, u1), v_bot, BUILDING, colour)
    sprite.commit(canvas, z0)


def _draw_low_plane(rng: np.random.Generator, cam: _Camera, canvas: _Canvas, side: int,
                    x: float, z0: float, z1: float, kind: int) -> None:
    """A wall, a fence (see-through lattice) or a hedge along the street."""
    top = {WALL: _u(rng, 0.8, 2.5), FENCE: _u(rng, 1.0, 2.0), VEGETATION: _u(rng, 0.8, 2.2)}[kind]
    plane = _side_plane(cam, side * x, z0, z1, 0.0, top)
    if plane is None:
        return
    mask = ~np.isnan(plane.up)
    up = np.nan_to_num(plane.up)
    if kind == FENCE:
        bar = _u(rng, 0.1, 0.25)
        mask &= ((plane.depth % bar) < bar * 0.35) | (np.abs(up - top + 0.1) < 0.08) | (up < 0.15)
        base = np.array([_u(rng, 0.25, 0.6)] * 3, np.float32)
    elif kind == WALL:
        base = np.array([_u(rng, 0.5, 0.7), _u(rng, 0.48, 0.66), _u(rng, 0.45, 0.62)])
    else:
        base = np.array([_u(rng, 0.1, 0.25), _u(rng, 0.28, 0.42), _u(rng, 0.08, 0.18)])
    rgb = np.empty(up.shape + (3, ), np.float32)
    rgb[:] = _jitter(rng, base)
    rgb *= (0.8 + 0.2 * up / top)[..., None]
    _draw_plane(canvas, plane, mask, rgb, kind)


def _draw_sides(rng: np.random.Generator, cam: _Camera, street: _Street,
                canvas: _Canvas) -> None:
    """Buildings along both sides, with gaps, side streets, walls, fences and hedges."""
    sun = _u(rng, 0.7, 1.0)
    for side in (-1, 1):
        shade = sun if side > 0 else 1.7 - sun
        line = street.building_line(side)
        if rng.random() < 0.15:  # a park: a hedge or fence instead of buildings
            _draw_low_plane(rng, cam, canvas, side, line, 1.0, street.z_back,
                            VEGETATION if rng.random() < 0.6 else FENCE)
            continue
        z = _u(rng, -5, 8)
        while z < street.z_back:
            length = _u(rng, 8, 30)
            z1 = min(z + length, street.z_back)
            if street.in_crossing(z, z1):
                z = max(c1 for c0, c1 in street.crossings if z < c1 and z1 > c0) + 0.5
                continue
            if rng.random() < 0.18:  # a gap, maybe closed by a wall or a fence
                if rng.random() < 0.5:
                    _draw_low_plane(rng, cam, canvas, side, line, z, z1,
                                    WALL if rng.random() < 0.5 else FENCE)
            else:
                setback = _u(rng, 0, 2.5) if rng.random() < 0.3 else 0.0
                _draw_building(rng, cam, canvas, side, line + setback, z, z1,
                               _u(rng, 7, 28), shade)
            z = z1


def _draw_backdrop(rng: np.random.Generator, cam: _Camera, street: _Street,
                   canvas: _Canvas) -> None:
    """The skyline closing the street at ``z_back``: building blocks and tree lines."""
    z = street.z_back
    _, v_ground = cam.to_image(0.0, 0.0, z)
    xs = (np.arange(cam.width, dtype=np.float32) + 0.5 - cam.cx) * z / cam.focal
    breaks = np.cumsum(rng.uniform(6, 25, 64)) - 300.0
    segment = np.searchsorted(breaks, xs)
    n_seg = len(breaks) + 1
    heights = rng.uniform(6, 35, n_seg).astype(np.float32)
    is_tree = rng.random(n_seg) < 0.35
    bumps = 1.5 * np.sin(xs * _u(rng, 0.5, 1.2)) * is_tree[segment]
    top = heights[segment] * np.where(is_tree[segment], 0.4, 1.0) + bumps
    r1 = min(int(math.ceil(v_ground)) + 1, cam.height)
    rows = (np.arange(r1, dtype=np.float32) + 0.5)[:, None]
    up = cam.cam_height - (rows - cam.horizon) * z / cam.focal
    mask = (up >= 0) & (up <= top[None, :])
    label = np.where(is_tree[segment], VEGETATION, BUILDING).astype(np.uint8)
    building_rgb = _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS), size=n_seg)] * 0.85
    tree_rgb = np.array([0.2, 0.32, 0.15], np.float32) * rng.uniform(0.8, 1.2, (n_seg, 1))
    colour = np.where(is_tree[:, None], tree_rgb, building_rgb)[segment]
    rgb = np.broadcast_to(colour[None], mask.shape + (3, ))
    canvas.paint(0, 0, mask, z, np.ascontiguousarray(rgb, np.float32),
                 np.broadcast_to(label[None], mask.shape).copy())


# ------------------------------------------------------------------------------------------
# Objects standing on the ground (billboards)
# ------------------------------------------------------------------------------------------


@dataclass
class _Thing:
    """An object on the ground: its kind, lateral position, depth and own random seed."""
    kind: str
    x: float
    z: float
    seed: int
    facing: int = 1


def _billboard(cam: _Camera, thing: _Thing, half_width: float, height: float,
               canvas: _Canvas) -> tuple:
    u, v = cam.to_image(thing.x, 0.0, thing.z)
    s = cam.focal / thing.z
    sprite = _Sprite(canvas, u - half_width * s, v - height * s, u + half_width * s, v)
    return sprite, u, v, s


def _draw_tree(rng: np.random.Generator, cam: _Camera, thing: _Thing, canvas: _Canvas) -> None:
    trunk_h, crown = _u(rng, 1.8, 4.0), _u(rng, 1.2, 3.2)
    sprite, u, v, s = _billboard(cam, thing, crown * 1.9, trunk_h + crown * 2.4, canvas)
    half = _u(rng, 0.1, 0.2) * s
    sprite.rect(u - half, v - (trunk_h + crown) * s, u + half, v, VEGETATION,
                _jitter(rng, np.array([0.3, 0.22, 0.15]), 0.03))
    green = _jitter(rng, np.array([0.22, 0.38, 0.14]), 0.05)
    blobs = sorted((_u(rng, -0.7, 0.7) * crown, trunk_h + crown * _u(rng, 0.6, 1.4))
                   for _ in range(int(rng.integers(3, 7))))
    for dx, h in sorted(blobs, key=lambda b: b[1]):
        shade = 0.75 + 0.3 * (h - trunk_h) / (2 * crown)
        radius = crown * _u(rng, 0.55, 0.9)
        sprite.ellipse(u + dx * s, v - h * s, radius * s, radius * _u(rng, 0.8, 1.1) * s,
                       VEGETATION, np.clip(green * shade, 0, 1))
    sprite.commit(canvas, thing.z)


def _draw_pole(rng: np.random.Generator, cam: _Camera, thing: _Thing, canvas: _Canvas) -> None:
    """A street lamp, a sign post or a traffic light post (poles lean over the road)."""
    height = _u(rng, 4.0, 8.5)
    sprite, u, v, s = _billboard(cam, thing, 2.5, height + 0.5, canvas)
    grey = _jitter(rng, np.full(3, 0.45, np.float32), 0.05)
    half = _u(rng, 0.06, 0.12) * s
    sprite.rect(u - half, v - height * s, u + half, v, POLE, grey)
    toward_road = -np.sign(thing.x) or 1.0
    kind = rng.choice(['lamp', 'sign', 'light', 'sign_lamp'], p=[0.4, 0.3, 0.15, 0.15])
    if kind in ('lamp', 'sign_lamp'):
        arm = _u(rng, 0.8, 2.0) * s * toward_road
        y_arm = v - height * s
        sprite.rect(min(u, u + arm), y_arm - 0.08 * s, max(u, u + arm), y_arm + 0.08 * s, POLE,
                    grey)
        sprite.ellipse(u + arm, y_arm + 0.1 * s, 0.35 * s, 0.12 * s, POLE, grey * 0.8)
    if kind in ('sign', 'sign_lamp'):
        _draw_sign(rng, sprite, u, v - _u(rng, 2.0, 3.2) * s, s)
    if kind == 'light':
        _draw_traffic_light(rng, sprite, u, v - height * s * _u(rng, 0.5, 0.9), s)
    sprite.commit(canvas, thing.z)


def _draw_sign(rng: np.random.Generator, sprite: _Sprite, u: float, v: float, s: float) -> None:
    size = _u(rng, 0.3, 0.45) * s
    rim, face = rng.choice(4), rng.random()
    rim_rgb = np.array([[0.8, 0.1, 0.1], [0.1, 0.25, 0.7], [0.9, 0.9, 0.9], [0.9, 0.7, 0.1]],
                       np.float32)[rim]
    face_rgb = np.full(3, 0.9, np.float32) if face < 0.6 else rim_rgb * 0.7
    shape = rng.choice(['circle', 'triangle', 'square'])
    if shape == 'circle':
        sprite.ellipse(u, v, size, size, TRAFFIC_SIGN, rim_rgb)
        sprite.ellipse(u, v, size * 0.75, size * 0.75, TRAFFIC_SIGN, face_rgb)
    elif shape == 'triangle':
        tri = np.array([[u, v - size], [u - size, v + size * 0.8], [u + size, v + size * 0.8]])
        sprite.polygon(tri, TRAFFIC_SIGN, rim_rgb)
        sprite.polygon(u + (tri - [u, v]) * 0.6 + [0, size * 0.1], TRAFFIC_SIGN, face_rgb)
    else:
        sprite.rect(u - size, v - size, u + size, v + size, TRAFFIC_SIGN, rim_rgb)
        sprite.rect(u - size * 0.8, v - size * 0.8, u + size * 0.8, v + size * 0.8, TRAFFIC_SIGN,
                    face_rgb)


def _draw_traffic_light(rng: np.random.Generator, sprite: _Sprite, u: float, v: float,
                        s: float) -> None:
    w, h = 0.18 * s, 0.5 * s
    sprite.rect(u - w, v - h, u + w, v + h, TRAFFIC_LIGHT,
                np.full(3, _u(rng, 0.08, 0.2), np.float32))
    lit = int(rng.integers(3))
    lamps = np.array([[0.9, 0.15, 0.1], [0.95, 0.7, 0.1], [0.2, 0.9, 0.4]], np.float32)
    for i in range(3):
        rgb = lamps[i] if i == lit else lamps[i] * 0.25
        sprite.ellipse(u, v - h * 0.62 + i * h * 0.62, w * 0.6, w * 0.6, TRAFFIC_LIGHT, rgb)


def _draw_person(rng: np.random.Generator, cam: _Camera, thing: _Thing, canvas: _Canvas) -> None:
    height = _u(rng, 1.5, 1.95)
    sprite, u, v, s = _billboard(cam, thing, 0.5, height, canvas)
    h = height * s
    skin = np.array([[0.9, 0.72, 0.6], [0.7, 0.5, 0.38], [0.45, 0.3, 0.22]],
                    np.float32)[rng.integers(3)]
    legs, top = _jitter(rng, rng.uniform(0.05, 0.6, 3)), _jitter(rng, rng.uniform(0.05, 0.9, 3))
    stride = _u(rng, 0.0, 0.12) * h
    for sign in (-1, 1):
        foot = u + sign * (0.04 * h + stride / 2)
        leg = np.array([[u + sign * 0.01 * h, v - 0.5 * h], [u + sign * 0.1 * h, v - 0.5 * h],
                        [foot + 0.04 * h, v], [foot - 0.04 * h, v]])
        sprite.polygon(leg, PERSON, legs * (0.9 if sign < 0 else 1.0))
        sprite.rect(u + sign * 0.13 * h - 0.03 * h, v - 0.8 * h, u + sign * 0.13 * h + 0.03 * h,
                    v - 0.47 * h, PERSON, top * 0.85)
    sprite.rect(u - 0.11 * h, v - 0.82 * h, u + 0.11 * h, v - 0.46 * h, PERSON, top)
    sprite.ellipse(u, v - 0.9 * h, 0.055 * h, 0.07 * h, PERSON, skin)
    if rng.random() < 0.7:  # hair or a hat
        sprite.ellipse(u, v - 0.93 * h, 0.056 * h, 0.045 * h, PERSON,
                       _jitter(rng, np.full(3, 0.15, np.float32), 0.1))
    sprite.commit(canvas, thing.z)


def _draw_car(rng: np.random.Generator, cam: _Camera, thing: _Thing, canvas: _Canvas) -> None:
    """A car seen from behind (``facing=1``) or from the front, with its visible side."""
    width, height = _u(rng, 1.65, 2.0), _u(rng, 1.35, 1.9)
    length, belt = _u(rng, 3.8, 4.9), height * _u(rng, 0.5, 0.6)
    paint = _jitter(rng, _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], 0.04)
    glass = np.array([0.08, 0.1, 0.13], np.float32) * _u(rng, 0.8, 1.6)
    x0, x1, z0 = thing.x - width / 2, thing.x + width / 2, thing.z
    corners = [cam.to_image(x, h, z) for x in (x0, x1) for h in (0.0, height)
               for z in (z0, z0 + length)]
    us, vs = zip(*corners)
    sprite = _Sprite(canvas, min(us), min(vs), max(us), max(vs))
    side_x = x0 if x0 > 0 else (x1 if x1 < 0 else None)
    if side_x is not None:
        _draw_car_side(cam, sprite, side_x, z0, length, height, belt, paint, glass)

    def to_px(dx, h):
        return cam.to_image(thing.x + dx, h, z0)

    hw = width / 2
    body = [to_px(-hw, 0.25), to_px(hw, 0.25), to_px(hw, belt), to_px(-hw, belt)]
    cabin = [to_px(-hw + 0.05, belt), to_px(hw - 0.05, belt), to_px(hw - 0.2, height),
             to_px(-hw + 0.2, height)]
    sprite.polygon(np.array(cabin), CAR, paint)
    window = [to_px(-hw + 0.15, belt + 0.08), to_px(hw - 0.15, belt + 0.08),
              to_px(hw - 0.27, height - 0.1), to_px(-hw + 0.27, height - 0.1)]
    sprite.polygon(np.array(window), CAR, glass)
    sprite.polygon(np.array(body), CAR, paint * 0.95)
    lamp = np.array([0.85, 0.1, 0.08] if thing.facing > 0 else [0.95, 0.95, 0.85], np.float32)
    for sign in (-1, 1):
        a, b = to_px(sign * (hw - 0.05), belt - 0.1), to_px(sign * (hw - 0.35), belt - 0.28)
        sprite.rect(min(a[0], b[0]), a[1], max(a[0], b[0]), b[1], CAR, lamp)
        a, b = to_px(sign * (hw - 0.2), 0.0), to_px(sign * (hw - 0.45), 0.32)
        sprite.rect(min(a[0], b[0]), b[1], max(a[0], b[0]), a[1], CAR, np.full(3, 0.05))
    a, b = to_px(-0.25, 0.4), to_px(0.25, 0.55)
    sprite.rect(a[0], b[1], b[0], a[1], CAR, np.full(3, 0.85))
    sprite.commit(canvas, z0)


def _draw_car_side(cam: _Camera, sprite: _Sprite, x: float, z0: float, length: float,
                   height: float, belt: float, paint: np.ndarray, glass: np.ndarray) -> None:

    def side(z: float, h: float) -> tuple:
        return cam.to_image(x, h, z0 + z)

    shade = paint * 0.8
    sprite.polygon(np.array([side(0, 0.25), side(length, 0.25), side(length, belt),
                             side(0, belt)]), CAR, shade)
    sprite.polygon(np.array([side(0.5, belt), side(length * 0.85, belt),
                             side(length * 0.7, height), side(length * 0.25, height)]), CAR, shade)
    sprite.polygon(np.array([side(0.7, belt + 0.08), side(length * 0.8, belt + 0.08),
                             side(length * 0.67, height - 0.1), side(length * 0.28, height - 0.1)]),
                   CAR, glass)
    for at in (0.18, 0.8):
        (u0, v0), (u1, v1) = side(length * at - 0.33, 0.0), side(length * at + 0.33, 0.66)
        sprite.ellipse((u0 + u1) / 2, (v0 + v1) / 2, abs(u1 - u0) / 2 + 0.5, abs(v1 - v0) / 2,
                       CAR, np.full(3, 0.06))


def _car_shadow(cam: _Camera, thing: _Thing, canvas: _Canvas) -> None:
    """Darken the road under a car (a contact shadow; the label stays road)."""
    pts = np.array([cam.to_image(thing.x + dx, 0.0, thing.z + dz)
                    for dx, dz in ((-1.1, -0.3), (1.1, -0.3), (1.1, 4.6), (-1.1, 4.6))])
    sprite = _Sprite(canvas, *pts.min(0), *pts.max(0))
    sprite.polygon(pts, ROAD, np.zeros(3))
    if sprite.empty:
        return
    region = (slice(sprite.top, sprite.top + sprite.mask.shape[0]),
              slice(sprite.left, sprite.left + sprite.mask.shape[1]))
    ground = sprite.mask.astype(bool) & (canvas.depth[region] >= thing.z - 0.5)
    canvas.rgb[region][ground] *= 0.45


def _place_things(rng: np.random.Generator, street: _Street) -> list[_Thing]:
    """Where cars, people, trees and poles stand; each thing gets its own seed."""
    things: list[_Thing] = []

    def add(kind: str, x: float, z: float, facing: int = 1) -> None:
        things.append(_Thing(kind, x, z, int(rng.integers(2**31)), facing))

    for centre, direction in street.lanes:
        z = _u(rng, 5, 16)
        while z < min(street.z_back - 5, 90):
            if rng.random() < 0.55 and (abs(centre) > 1.5 or z > 9):  # not on the bonnet
                add('car', centre + _u(rng, -0.4, 0.4), z, direction)
            z += _u(rng, 8, 28)
    for side in (-1, 1):
        edge, kerb = street.edge(side), street.kerb_outer(side)
        if rng.random() < 0.5:  # parked cars along the kerb
            z = _u(rng, 4, 12)
            while z < 60:
                if rng.random() < 0.7 and not street.in_crossing(z - 1, z + 6):
                    add('car', side * (edge - _u(rng, 1.0, 1.3)), z, int(rng.choice([-1, 1])))
                z += _u(rng, 5.2, 9)
        for kind, step, x0, x1 in (('tree', (7, 16), kerb - 0.8, kerb + street.yard[side]),
                                   ('pole', (12, 35), edge + street.verge[side] + 0.3,
                                    edge + street.verge[side] + 0.6)):
            z = _u(rng, 3, step[1])
            dense = rng.random() < (0.55 if kind == 'tree' else 0.85)
            while dense and z < street.z_back - 3:
                if not street.in_crossing(z - 1, z + 1):
                    add(kind, side * _u(rng, x0, max(x0, x1)), z)
                z += _u(rng, *step)
        for _ in range(int(rng.poisson(1.8))):
            add('person', side * _u(rng, edge + street.verge[side] + 0.4, kerb - 0.2),
                _u(rng, 3.5, 45))
    for _ in range(int(rng.poisson(0.4))):  # someone crossing the road
        add('person', _u(rng, street.road_left + 0.5, street.road_right - 0.5), _u(rng, 6, 35))
    return things


_DRAW = {'tree': _draw_tree, 'pole': _draw_pole, 'person': _draw_person, 'car': _draw_car}


def _draw_things(cam: _Camera, things: list[_Thing], canvas: _Canvas) -> None:
    for thing in things:
        if thing.kind == 'car' and thing.z > 3.0:
            _car_shadow(cam, thing, canvas)
    for thing in sorted(things, key=lambda t: -t.z):  # painter's order: far to near
        if thing.z > 2.5:
            _DRAW[thing.kind](np.random.default_rng(thing.seed), cam, thing, canvas)


def _draw_ego_vehicle(rng: np.random.Generator, cam: _Camera, canvas: _Canvas) -> None:
    """The bonnet of the recording car at the bottom, labelled ignore as in Cityscapes."""
    rise = cam.height * _u(rng, 0.05, 0.12)
    cols = np.arange(cam.width, dtype=np.float32) + 0.5
    edge = cam.height - rise * (1 - 0.6 * ((cols - cam.cx) / cam.width * 2)**2)
    rows = np.arange(cam.height, dtype=np.float32)[:, None] + 0.5
    mask = rows > edge[None, :]
    tone = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * 0.6
    shine = np.clip((rows - edge[None, :]) / max(rise, 1.0), 0, 1)[..., None]
    rgb = (tone * (1.2 - 0.5 * shine)).astype(np.float32)
    canvas.label[mask] = IGNORE_INDEX
    canvas.depth[mask] = _u(rng, 1.0, 2.0)
    canvas.rgb[mask] = rgb[mask]


def _finish(rng: np.random.Generator, canvas: _Canvas) -> np.ndarray:
    """Texture noise by class, exposure, white balance, optics blur and sensor noise."""
    height, width = canvas.label.shape
    amp = _NOISE_AMPLITUDE * _u(rng, 0.6, 1.4)
    texture = np.ones((height, width), np.float32)
    noises = (rng.standard_normal((height, width), dtype=np.float32),
              _smooth_noise(rng, height, width, 3), _smooth_noise(rng, height, width, 16))
    for octave, noise in enumerate(noises):
        texture += np.take(amp[:, octave], canvas.label) * noise
    gain = _u(rng, 0.85, 1.12) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    rgb = canvas.rgb * (texture[..., None] * gain)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.45 * max(width / 512, 0.5))
    rgb += (rng.random(rgb.shape, dtype=np.float32) - 0.5) * 0.028  # sensor noise, std 0.008
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_scene(rng: np.random.Generator, height: int,
                 width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one random street scene seen from a driving car.

    Args:
        rng (np.random.Generator): The only source of randomness: the same generator state
            gives the same scene.
        height (int): Image height in pixels, at least 16.
        width (int): Image width in pixels, at least 16.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: ``(rgb, label, depth)``: the image,
        (height, width, 3) uint8 RGB; the Cityscapes train ids, (height, width) uint8 with 255
        on the ego vehicle; the z-depth in metres, (height, width) float32, :data:`SKY_DEPTH`
        on the sky.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f'rng must be a numpy.random.Generator, got {type(rng).__name__}')
    if height < 16 or width < 16:
        raise ValueError(f'height and width must be at least 16 pixels, got {height}x{width}')
    cam = _make_camera(rng, height, width)
    street = _make_street(rng)
    canvas = _Canvas(height, width)
    _draw_sky(rng, cam, canvas)
    _draw_ground(rng, cam, street, canvas)
    things = _place_things(rng, street)
    _draw_backdrop(rng, cam, street, canvas)
    _draw_sides(rng, cam, street, canvas)
    _draw_things(cam, things, canvas)
    if rng.random() < 0.5:
        _draw_ego_vehicle(rng, cam, canvas)
    return _finish(rng, canvas), canvas.label, canvas.depth
