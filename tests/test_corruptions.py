"""The ImageNet-C corruptions (stag_seg.datasets.generators.corruptions) and the writer of -C
data sets (stag_seg.datasets.generators.corrupted_sets, tools/make_corrupted.py)."""
import functools
import importlib
import json
import os
import os.path as osp
import subprocess
import sys

import stag_seg  # noqa: F401,I001  (first: it prepares mmcv before mmseg is imported)

import cv2
import numpy as np
import pytest
from PIL import Image

from stag_seg.datasets import CORRUPTIONS, CIFARCDataset, ImageNetCDataset
from stag_seg.datasets.generators import (CORRUPTION_PARAMS, CORRUPTION_PRESETS, corrupt, image_rng,
                                          path_key, resolve_preset, write_corrupted_set)
from stag_seg.datasets.generators import corruptions as corruptions_module

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# no randomness: the seed must not matter
SEEDLESS = ('defocus_blur', 'zoom_blur', 'brightness', 'contrast', 'pixelate', 'jpeg_compression')


@functools.lru_cache(maxsize=None)
def _scene(seed: int, height: int, width: int) -> np.ndarray:
    """A natural-looking RGB image: smooth colour gradients, a few anti-aliased discs and
    polygons, and texture at every scale (about 1/f, as in photographs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for ch in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        img[..., ch] = 128 + 50 * (a * yy / height + b * xx / width) + 30 * c
    for _ in range(5):
        color = rng.uniform(20, 235, 3).tolist()
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(.1, .3) * min(height, width)
        if rng.random() < .5:
            cv2.circle(img, (int(cx), int(cy)), int(radius), color, -1, cv2.LINE_AA)
        else:
            corners = np.array([cx, cy]) + radius * rng.uniform(-1, 1, (4, 2))
            cv2.fillPoly(img, [corners.astype(np.int32)], color, cv2.LINE_AA)
    texture = np.zeros((height, width), np.float32)
    cell = max(height, width) / 2
    while cell >= 1:
        coarse = rng.standard_normal((int(height / cell) + 2, int(width / cell) + 2))
        texture += cell ** .5 * cv2.resize(coarse.astype(np.float32), (width, height),
                                           interpolation=cv2.INTER_CUBIC)
        cell /= 2
    img += (25 / texture.std() * texture)[..., None] * rng.uniform(.6, 1, 3).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    out.flags.writeable = False  # shared by the tests through the cache
    return out


# ------------------------------------------------------------------------------------------
# corrupt(): shapes, presets, randomness
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize('corruption', CORRUPTIONS)
def test_every_severity_returns_an_image_of_the_input_shape(corruption):
    for height, width, preset in ((32, 32, 'auto'), (48, 40, 'auto'), (224, 224, 'imagenet')):
        img = _scene(0, height, width)
        for severity in range(1, 6):
            out = corrupt(img, corruption, severity, rng=severity, preset=preset)
            assert out.shape == img.shape and out.dtype == np.uint8, (height, width, severity)
            assert out.flags.writeable
        assert not np.array_equal(out, img)


def test_auto_preset_follows_the_short_side():
    assert resolve_preset((64, 500, 3)) == 'cifar' and resolve_preset((65, 65)) == 'imagenet'
    assert resolve_preset((32, 32), 'imagenet') == 'imagenet'
    small, large = _scene(2, 64, 80), _scene(2, 80, 65)
    for img, preset in ((small, 'cifar'), (large, 'imagenet')):
        np.testing.assert_array_equal(corrupt(img, 'fog', 3, rng=1),
                                      corrupt(img, 'fog', 3, rng=1, preset=preset))
    assert not np.array_equal(corrupt(small, 'fog', 3, rng=1, preset='imagenet'),
                              corrupt(small, 'fog', 3, rng=1, preset='cifar'))


@pytest.mark.parametrize('corruption', CORRUPTIONS)
def test_same_seed_gives_the_same_image_and_another_seed_another(corruption):
    img = _scene(1, 40, 48)
    first = corrupt(img, corruption, 3, rng=7)
    np.testing.assert_array_equal(first, corrupt(img, corruption, 3, rng=7))
    np.testing.assert_array_equal(first, corrupt(img, corruption, 3,
                                                 rng=np.random.default_rng(7)))
    if corruption in SEEDLESS:
        np.testing.assert_array_equal(first, corrupt(img, corruption, 3, rng=8))
        np.testing.assert_array_equal(first, corrupt(img, corruption, 3))
    else:
        assert not np.array_equal(first, corrupt(img, corruption, 3, rng=8))


# ------------------------------------------------------------------------------------------
# corrupt(): the definitions
# ------------------------------------------------------------------------------------------


def test_contrast_and_brightness_follow_their_formulas():
    img = _scene(3, 32, 32)
    x = img.astype(np.float64) / 255
    for severity, c in enumerate(CORRUPTION_PARAMS['contrast']['cifar'], 1):
        mean = x.mean(axis=(0, 1))
        expected = np.round(np.clip((x - mean) * c + mean, 0, 1) * 255)
        np.testing.assert_array_equal(corrupt(img, 'contrast', severity), expected)
    for severity, c in enumerate(CORRUPTION_PARAMS['brightness']['cifar'], 1):
        hsv = cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2HSV)  # independent round trip
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        expected = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1) * 255
        diff = np.abs(corrupt(img, 'brightness', severity).astype(np.float64) - expected)
        assert diff.max() <= 1.0


def test_noise_strengths_match_the_published_tables():
    grey = np.full((224, 224, 3), 128, np.uint8)
    for severity in (1, 2):  # little clipping at 0 and 255 yet
        sigma = CORRUPTION_PARAMS['gaussian_noise']['imagenet'][severity - 1]
        diff = corrupt(grey, 'gaussian_noise', severity, rng=0).astype(np.float64) - 128
        assert diff.std() == pytest.approx(sigma * 255, rel=.03)
        amount = CORRUPTION_PARAMS['impulse_noise']['imagenet'][severity - 1]
        out = corrupt(grey, 'impulse_noise', severity, rng=0)
        assert (out == 0).mean() == pytest.approx(amount / 2, rel=.1)
        assert (out == 255).mean() == pytest.approx(amount / 2, rel=.1)


@pytest.mark.parametrize('corruption', ['defocus_blur', 'motion_blur'])
def test_blur_lengths_scale_with_the_image(corruption):
    """A CIFAR image blurred at 64 px looks like its 32 px blur enlarged (the same seed draws
    the same motion angle). Blurs of a fixed pixel length miss by half the blur or more."""
    small = _scene(4, 32, 32)
    large = cv2.resize(small, (64, 64), interpolation=cv2.INTER_CUBIC)

    def up(img):
        return cv2.resize(img, (64, 64), interpolation=cv2.INTER_CUBIC).astype(np.float64)

    scaled = corrupt(large, corruption, 5, rng=3, preset='cifar').astype(np.float64)
    expected = up(corrupt(small, corruption, 5, rng=3, preset='cifar'))
    assert np.abs(scaled - expected).mean() < .25 * np.abs(expected - up(small)).mean()


# ------------------------------------------------------------------------------------------
# the published tables, written out from make_imagenet_c.py and make_cifar_c.py
# ------------------------------------------------------------------------------------------

PUBLISHED = {
    'gaussian_noise': ((.08, .12, .18, .26, .38), (.04, .06, .08, .09, .10)),
    'shot_noise': ((60, 25, 12, 5, 3), (500, 250, 100, 75, 50)),
    'impulse_noise': ((.03, .06, .09, .17, .27), (.01, .02, .03, .05, .07)),
    'defocus_blur': (((3, .1), (4, .5), (6, .5), (8, .5), (10, .5)),
                     ((.3, .4), (.4, .5), (.5, .6), (1, .2), (1.5, .1))),
    'glass_blur': (((.7, 1, 2), (.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
                   ((.05, 1, 1), (.25, 1, 1), (.4, 1, 1), (.25, 1, 2), (.4, 1, 2))),
    'motion_blur': (((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
                    ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),
    'zoom_blur': (((1, 1.11, .01), (1, 1.16, .01), (1, 1.21, .02), (1, 1.26, .02),
                   (1, 1.31, .03)),
                  ((1, 1.06, .01), (1, 1.11, .01), (1, 1.16, .01), (1, 1.21, .01),
                   (1, 1.26, .01))),
    'snow': (((.1, .3, 3, .5, 10, 4, .8), (.2, .3, 2, .5, 12, 4, .7),
              (.55, .3, 4, .9, 12, 8, .7), (.55, .3, 4.5, .85, 12, 8, .65),
              (.55, .3, 2.5, .85, 12, 12, .55)),
             ((.1, .2, 1, .6, 8, 3, .95), (.1, .2, 1, .5, 10, 4, .9),
              (.15, .3, 1.75, .55, 10, 4, .9), (.25, .3, 2.25, .6, 12, 6, .85),
              (.3, .3, 1.25, .65, 14, 12, .8))),
    'frost': (((1, .4), (.8, .6), (.7, .7), (.65, .7), (.6, .75)),
              ((1, .2), (1, .3), (.9, .4), (.85, .4), (.75, .45))),
    'fog': (((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
            ((.2, 3), (.5, 3), (.75, 2.5), (1, 2), (1.5, 1.75))),
    'brightness': ((.1, .2, .3, .4, .5), (.05, .1, .15, .2, .3)),
    'contrast': ((.4, .3, .2, .1, .05), (.75, .5, .4, .3, .15)),
    # make_imagenet_c.py writes these in multiples of 244, make_cifar_c.py of 32
    'elastic_transform': (tuple((244 * a, 244 * b, 244 * c) for a, b, c in (
        (2, .7, .1), (2, .08, .2), (.05, .01, .02), (.07, .01, .02), (.12, .01, .02))),
        tuple((32 * a, 32 * b, 32 * c) for a, b, c in (
            (0, 0, .08), (.05, .2, .07), (.08, .06, .06), (.1, .04, .05), (.1, .03, .03)))),
    'pixelate': ((.6, .5, .4, .3, .25), (.95, .9, .85, .75, .65)),
    'jpeg_compression': ((25, 18, 15, 10, 7), (80, 65, 58, 50, 40)),
}


@pytest.mark.parametrize('corruption', CORRUPTIONS)
def test_the_default_table_is_the_published_one(corruption):
    imagenet, cifar = PUBLISHED[corruption]
    for preset, expected in (('imagenet', imagenet), ('cifar', cifar)):
        got = tuple(corruptions_module.corruption_params(corruption, preset, s)
                    for s in range(1, 6))
        np.testing.assert_allclose(np.array(got, dtype=np.float64),
                                   np.array(expected, dtype=np.float64), rtol=1e-12)


def test_the_monotone_table_changes_exactly_seven_entries_and_only_when_asked():
    changed = []
    for corruption in CORRUPTIONS:
        for preset in CORRUPTION_PRESETS:
            for severity in range(1, 6):
                a = corruptions_module.corruption_params(corruption, preset, severity)
                b = corruptions_module.corruption_params(corruption, preset, severity,
                                                         table='monotone')
                if a != b:
                    changed.append((corruption, preset, severity))
    assert sorted(changed) == sorted(corruptions_module.MONOTONE_CHANGES)
    assert len(changed) == 7
    img = _scene(3, 224, 224)  # glass blur at ImageNet severity 1: the tables differ
    np.testing.assert_array_equal(corrupt(img, 'glass_blur', 1, rng=0),
                                  corrupt(img, 'glass_blur', 1, rng=0, table='published'))
    assert not np.array_equal(corrupt(img, 'glass_blur', 1, rng=0),
                              corrupt(img, 'glass_blur', 1, rng=0, table='monotone'))
    with pytest.raises(ValueError, match="table must be one of"):
        corrupt(img, 'fog', 1, table='sorted')


def _fake_frost_package(root, monkeypatch, value=200):
    """An installed-looking ``imagecorruptions`` package holding flat frost photographs."""
    folder = root / 'imagecorruptions' / 'frost'
    folder.mkdir(parents=True)
    (root / 'imagecorruptions' / '__init__.py').write_text(
        'raise ImportError("importing the package is not allowed")\n')
    for i, name in enumerate(corruptions_module.FROST_FILES):
        photo = np.full((300 + 10 * i, 320, 3), (value, value - 20, value - 40), np.uint8)
        cv2.imwrite(str(folder / name), photo)  # BGR on disk, as the reference's files
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(corruptions_module, '_frost_cache', {})
    importlib.invalidate_caches()


def test_frost_uses_the_reference_photographs_when_installed(tmp_path, monkeypatch):
    img = _scene(4, 224, 224)
    assert corruptions_module.frost_source('auto') in ('photos', 'procedural')
    monkeypatch.setattr(corruptions_module, '_FROST_PACKAGE', 'no_such_frost_package')
    assert corruptions_module.frost_source('auto') == 'procedural'
    with pytest.raises(ModuleNotFoundError, match=r"stag_seg\[frost\]"):
        corrupt(img, 'frost', 3, rng=0, frost='photos')
    monkeypatch.setattr(corruptions_module, '_FROST_PACKAGE', 'imagecorruptions')
    _fake_frost_package(tmp_path, monkeypatch)
    assert corruptions_module.frost_source('auto') == 'photos'
    out = corrupt(img, 'frost', 3, rng=0)  # found without importing the package
    a, b = corruptions_module.corruption_params('frost', 'imagenet', 3)
    # a flat photograph (up to JPEG noise): a * x + b * frost, frost in RGB (files are BGR)
    expected = np.clip(a * img.astype(np.float64) + b * np.array([160., 180., 200.]), 0, 255)
    assert np.abs(out.astype(np.float64) - expected).max() <= 2
    procedural = corrupt(img, 'frost', 3, rng=0, frost='procedural')
    assert not np.array_equal(out, procedural)


# ------------------------------------------------------------------------------------------
# corrupt(): severity orders the distortion
# ------------------------------------------------------------------------------------------


def _mean_abs_diff(clean: np.ndarray, out: np.ndarray) -> float:
    return float(np.abs(out.astype(np.float64) - clean).mean())


def _decorrelation(clean: np.ndarray, out: np.ndarray) -> float:
    """1 - Pearson correlation of the grey images: the share of the result that is not the
    image."""
    grey = [cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).ravel().astype(np.float64) for a in (clean, out)]
    return float(1 - np.corrcoef(*grey)[0, 1])


# frost is `a * image + b * frost`: the difference to the image shrinks with `a` wherever the
# frost is brighter than the image, so the mean difference can fall from one severity to the
# next; the correlation with the image falls strictly with `b / a`, which both tables raise.
MEASURES = {'frost': _decorrelation}
# (height, width, preset, number of images)
SETTINGS = {'cifar-32x32': (32, 32, 'cifar', 6), 'cifar-48x40': (48, 40, 'cifar', 4),
            'imagenet-224x224': (224, 224, 'imagenet', 3)}


@pytest.mark.parametrize('setting', SETTINGS)
@pytest.mark.parametrize('corruption', [c for c in CORRUPTIONS if c != 'elastic_transform'])
def test_distortion_grows_strictly_with_severity_in_the_monotone_table(corruption, setting):
    height, width, preset, count = SETTINGS[setting]
    measure = MEASURES.get(corruption, _mean_abs_diff)
    images = [_scene(10 + i, height, width) for i in range(count)]
    levels = [np.mean([measure(img, corrupt(img, corruption, severity, rng=i, preset=preset,
                                            table='monotone', frost='procedural'))
                       for i, img in enumerate(images)]) for severity in range(1, 6)]
    assert all(b > a for a, b in zip(levels, levels[1:])), np.round(levels, 3)


def _local_strain(field: np.ndarray | None) -> float:
    """Mean Frobenius norm of the displacement's Jacobian minus its mean (its affine part)."""
    if field is None:
        return 0.0
    jacobian = np.stack([np.gradient(field, axis=2), np.gradient(field, axis=1)])
    jacobian -= jacobian.mean(axis=(2, 3), keepdims=True)
    return float(np.sqrt((jacobian ** 2).sum(axis=(0, 1))).mean())


@pytest.mark.parametrize('preset, height, width', [('cifar', 32, 32), ('cifar', 48, 40),
                                                   ('imagenet', 224, 224)])
def test_elastic_local_strain_grows_strictly_with_severity(preset, height, width):
    """elastic_transform is a random affine warp followed by a smooth random displacement.
    Differences to the image measure mostly the affine part, which the published tables make
    largest at severities 1-2 (ImageNet) or shrink with severity (CIFAR); what deforms shapes
    and texture is the local strain of the displacement, and that must grow."""
    scale = np.sqrt(height * width) / CORRUPTION_PRESETS[preset]
    table = CORRUPTION_PARAMS['elastic_transform'][preset]
    levels = []
    for params in table:
        fields = [corruptions_module._elastic_warp(height, width, params,
                                                   np.random.default_rng(seed), scale)[1]
                  for seed in range(4)]
        levels.append(np.mean([_local_strain(f) for f in fields]))
    assert all(b > a for a, b in zip(levels, levels[1:])), np.round(levels, 4)
    img = _scene(5, height, width)  # and the image follows the warp of the same seed
    out = corrupt(img, 'elastic_transform', 5, rng=1, preset=preset)
    matrix, field = corruptions_module._elastic_warp(height, width, table[4],
                                                     np.random.default_rng(1), scale)
    warped = cv2.warpAffine(img.astype(np.float32) / 255, matrix, (width, height),
                            borderMode=cv2.BORDER_REFLECT_101)
    grid_y, grid_x = np.mgrid[:height, :width].astype(np.float32)
    expected = cv2.remap(warped, grid_x + field[0], grid_y + field[1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    assert np.abs(out - np.round(expected * 255)).max() <= 1


# ------------------------------------------------------------------------------------------
# corrupt(): bad input
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize('args, kwargs, error, match', [
    (('fogg', 1), {}, ValueError, "unknown corruption 'fogg'; valid names are gaussian_noise, "
     'shot_noise, impulse_noise, .*, jpeg_compression'),
    (('fog', 0), {}, ValueError, r'severity must be an int in 1\.\.5, got 0'),
    (('fog', 6), {}, ValueError, r'severity must be an int in 1\.\.5, got 6'),
    (('fog', 2.0), {}, ValueError, r'severity must be an int in 1\.\.5, got 2\.0'),
    (('fog', True), {}, ValueError, r'severity must be an int in 1\.\.5, got True'),
    (('fog', 1), dict(preset='tiny'), ValueError, "preset must be 'auto', 'imagenet' or "
     "'cifar', got 'tiny'"),
    (('fog', 1), dict(rng='seed'), TypeError, 'rng must be a numpy.random.Generator, an int '
     'seed or None, got str'),
])
def test_bad_arguments_raise_clear_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        corrupt(_scene(0, 32, 32), *args, **kwargs)


@pytest.mark.parametrize('image, error, match', [
    (np.zeros((32, 32, 3), np.float32), ValueError,
     r'\(H, W, 3\) uint8 RGB array, got shape \(32, 32, 3\) and dtype float32'),
    (np.zeros((32, 32), np.uint8), ValueError, r'got shape \(32, 32\) and dtype uint8'),
    (np.zeros((32, 32, 4), np.uint8), ValueError, r'got shape \(32, 32, 4\)'),
    (np.zeros((4, 32, 3), np.uint8), ValueError, 'at least 8x8 pixels, got 4x32'),
    ([[[0, 0, 0]]], TypeError, 'image must be a numpy array'),
])
def test_bad_images_raise_clear_errors(image, error, match):
    with pytest.raises(error, match=match):
        corrupt(image, 'gaussian_noise', 1)


# ------------------------------------------------------------------------------------------
# write_corrupted_set (tools/make_corrupted.py)
# ------------------------------------------------------------------------------------------


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root).replace(os.sep, '/')
                  for d, _, files in os.walk(root) for f in files)


@pytest.fixture
def image_folder(tmp_path):
    """An ImageNet-style tree: two class folders, JPEG and PNG files."""
    root = tmp_path / 'val'
    for rel, seed in (('n01/a.JPEG', 0), ('n01/b.png', 1), ('n02/c.jpg', 2)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_scene(seed, 40, 48)).save(path, quality=95)
    (root / 'n02' / 'notes.txt').write_text('not an image')
    return root


def test_make_corrupted_writes_the_imagenet_c_layout(image_folder, tmp_path):
    out = tmp_path / 'c'
    summary = write_corrupted_set(str(out), folder=str(image_folder),
                                  corruptions=['fog', 'gaussian_noise'], severities=[5, 1],
                                  workers=1)
    assert summary['inputs'] == 3 and summary['written'] == 12
    assert _files(out) == sorted(['corruption_meta.json'] + [
        f'{c}/{s}/{rel}' for c in ('fog', 'gaussian_noise') for s in (1, 5)
        for rel in ('n01/a.JPEG', 'n01/b.png', 'n02/c.jpg')])
    with Image.open(out / 'fog/5/n01/a.JPEG') as img:
        assert img.format == 'JPEG' and img.size == (48, 40) and img.mode == 'RGB'
    with Image.open(out / 'fog/5/n01/b.png') as img:  # PNG is lossless: the exact result
        assert img.format == 'PNG'
        clean = np.asarray(Image.open(image_folder / 'n01/b.png').convert('RGB'))
        rng = image_rng(0, 'fog', 5, path_key('n01/b.png'))
        np.testing.assert_array_equal(np.asarray(img), corrupt(clean, 'fog', 5, rng))
    data = ImageNetCDataset(data_root=str(out), corruption='fog', severity=5, pipeline=[])
    assert len(data) == 3 and data.metainfo['classes'] == ('n01', 'n02')
    assert [data.get_data_info(i)['gt_label'] for i in range(3)] == [0, 0, 1]
    assert cv2.imread(data.get_data_info(2)['img_path']).shape == (40, 48, 3)


def test_make_corrupted_writes_the_cifar_c_layout(tmp_path):
    images = np.stack([_scene(i, 32, 32) for i in range(6)])
    labels = np.array([3, 1, 4, 1, 5, 9], np.uint8)
    np.save(tmp_path / 'images.npy', images)
    np.save(tmp_path / 'labels.npy', labels)
    out = tmp_path / 'c'
    args = dict(npy=str(tmp_path / 'images.npy'), labels=str(tmp_path / 'labels.npy'),
                workers=1, seed=3)
    summary = write_corrupted_set(str(out), corruptions=['snow', 'contrast'], **args)
    assert summary['written'] == 6 * 2 * 5 and _files(out) == [
        'contrast.npy', 'corruption_meta.json', 'labels.npy', 'snow.npy']
    snow = np.load(out / 'snow.npy')
    assert snow.shape == (30, 32, 32, 3) and snow.dtype == np.uint8
    np.testing.assert_array_equal(np.load(out / 'labels.npy'), np.tile(labels, 5))
    for severity in (1, 4):
        for i in (0, 5):
            np.testing.assert_array_equal(
                snow[(severity - 1) * 6 + i],
                corrupt(images[i], 'snow', severity, image_rng(3, 'snow', severity, i)))
    data = CIFARCDataset(data_root=str(out), corruption='snow', severity=4, pipeline=[])
    assert len(data) == 6 and [data.get_data_info(i)['gt_label'] for i in range(6)] == [
        3, 1, 4, 1, 5, 9]
    np.testing.assert_array_equal(data.get_data_info(2)['img'], snow[3 * 6 + 2])
    # a later run adds a corruption beside them, with the same images as a run of all three
    write_corrupted_set(str(out), corruptions=['fog'], **args)
    write_corrupted_set(str(tmp_path / 'all'), corruptions=['contrast', 'fog', 'snow'],
                        **dict(args, workers=2))
    for name in ('contrast', 'fog', 'snow', 'labels'):
        np.testing.assert_array_equal(np.load(out / f'{name}.npy'),
                                      np.load(tmp_path / 'all' / f'{name}.npy'))
    meta = json.loads((out / 'corruption_meta.json').read_text())
    assert meta['table'] == 'published' and meta['frost'] in ('photos', 'procedural')
    assert meta['corruptions'] == ['contrast', 'fog', 'snow'] and meta['seed'] == 3
    # another table into the same folder would mix two benchmarks: refused
    with pytest.raises(ValueError, match='records other settings'):
        write_corrupted_set(str(out), corruptions=['brightness'], table='monotone', **args)
    assert not (out / 'brightness.npy').exists()


def test_make_corrupted_refuses_to_overwrite_unless_asked(image_folder, tmp_path):
    args = dict(folder=str(image_folder), corruptions=['contrast'], severities=[2])
    write_corrupted_set(str(tmp_path / 'c'), **args)
    with pytest.raises(FileExistsError, match='--overwrite'):
        write_corrupted_set(str(tmp_path / 'c'), **args)
    write_corrupted_set(str(tmp_path / 'c'), overwrite=True, **args)
    assert len(_files(tmp_path / 'c')) == 3 + 1  # and corruption_meta.json


def test_make_corrupted_input_errors_name_the_problem(tmp_path):
    out = str(tmp_path / 'c')
    with pytest.raises(FileNotFoundError, match='--folder: .*missing is not a directory'):
        write_corrupted_set(out, folder=str(tmp_path / 'missing'))
    (tmp_path / 'empty' / 'n01').mkdir(parents=True)
    with pytest.raises(ValueError, match='hold no images'):
        write_corrupted_set(out, folder=str(tmp_path / 'empty'))
    with pytest.raises(ValueError, match='holds no class folders'):
        write_corrupted_set(out, folder=str(tmp_path / 'empty' / 'n01'))
    np.save(tmp_path / 'images.npy', np.zeros((4, 32, 32, 3), np.uint8))
    np.save(tmp_path / 'labels.npy', np.zeros(3, np.int64))
    npy = dict(npy=str(tmp_path / 'images.npy'), labels=str(tmp_path / 'labels.npy'))
    with pytest.raises(ValueError, match=r'holds \(3,\) labels for 4 images'):
        write_corrupted_set(out, **npy)
    with pytest.raises(FileNotFoundError, match='--labels: .*nope.npy is not a file'):
        write_corrupted_set(out, **dict(npy, labels=str(tmp_path / 'nope.npy')))
    np.save(tmp_path / 'floats.npy', np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match='uint8 RGB images, got shape .* and dtype float32'):
        write_corrupted_set(out, **dict(npy, npy=str(tmp_path / 'floats.npy')))
    assert not osp.exists(tmp_path / 'c')


@pytest.mark.parametrize('options, message', [
    (dict(severities=[0]), '--severities must be in 1..5, got 0'),
    (dict(severities=[6]), '--severities must be in 1..5, got 6'),
    (dict(corruptions=['fogg']), "--corruptions: unknown 'fogg'"),
    (dict(labels='x.npy'), '--labels belongs to --npy'),
    (dict(npy='x.npy'), 'give one source of images'),
    (dict(table='monotonic'), '--table must be one of published, monotone'),
])
def test_make_corrupted_rejects_bad_options(image_folder, tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        write_corrupted_set(str(tmp_path / 'c'), **{'folder': str(image_folder), **options})
    assert not osp.exists(tmp_path / 'c')


def test_make_corrupted_array_mode_needs_every_severity(tmp_path):
    with pytest.raises(ValueError, match='array mode makes 1 2 3 4 5, got 5'):
        write_corrupted_set(str(tmp_path), npy='x.npy', labels='y.npy', severities=[5])


def test_the_command_line_writes_what_the_generator_writes(tmp_path):
    images = np.stack([_scene(i, 32, 32) for i in range(2)])
    np.save(tmp_path / 'images.npy', images)
    np.save(tmp_path / 'labels.npy', np.array([0, 1]))
    args = dict(npy=str(tmp_path / 'images.npy'), labels=str(tmp_path / 'labels.npy'), seed=1,
                corruptions=['contrast', 'glass_blur'], table='monotone')
    write_corrupted_set(str(tmp_path / 'lib'), **args)
    proc = subprocess.run([
        sys.executable, osp.join(REPO, 'tools', 'make_corrupted.py'), '--npy', args['npy'],
        '--labels', args['labels'], '--seed', '1', '--corruptions', 'glass_blur', 'contrast',
        '--table', 'monotone', '--out', str(tmp_path / 'cli')],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert _files(tmp_path / 'lib') == _files(tmp_path / 'cli')
    for f in _files(tmp_path / 'lib'):
        assert (tmp_path / 'lib' / f).read_bytes() == (tmp_path / 'cli' / f).read_bytes(), f
