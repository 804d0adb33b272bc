"""Synthetic scenes, ACDC weather, the benchmark generator and the ACDC dataset."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import stag_seg  # noqa: F401,I001  (first: it prepares mmcv before mmseg is imported)

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS, TRANSFORMS

from stag_seg.datasets import ACDCDataset
from stag_seg.datasets.generators import (ACDC_RETAINED, CONDITIONS, SCENE_CLASSES, SKY_DEPTH,
                                          apply_condition, calibration_tasks, choose_severity,
                                          fog, parse_severity, render_scene, write_synthetic_acdc)
from stag_seg.datasets.generators.synthetic_acdc import run_tasks

ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = (0, 1, 2, 5, 7, 8, 9,
                                                                            10, 11, 13)
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _scene(seed, height=128, width=256):
    return render_scene(np.random.default_rng(seed), height, width)


def _files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root) for f in files)


# ------------------------------------------------------------------------------------------
# render_scene
# ------------------------------------------------------------------------------------------


def test_render_scene_returns_rgb_label_and_depth_of_the_requested_size():
    rgb, label, depth = _scene(0, 96, 200)
    assert rgb.shape == (96, 200, 3) and rgb.dtype == np.uint8
    assert label.shape == (96, 200) and label.dtype == np.uint8
    assert depth.shape == (96, 200) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth > 0).all()
    assert set(np.unique(label)) <= set(SCENE_CLASSES) | {255}


def test_render_scene_draws_the_street_classes():
    labels = [_scene(seed)[1] for seed in range(12)]
    for label in labels:
        assert {ROAD, SIDEWALK, BUILDING} <= set(np.unique(label))
    seen = set(np.unique(np.stack(labels)))
    assert {ROAD, SIDEWALK, BUILDING, VEGETATION, TERRAIN, SKY, PERSON, CAR} <= seen
    assert POLE in seen or SIGN in seen


def test_road_depth_grows_towards_the_horizon_and_sky_is_far_above():
    for seed in range(5):
        _, label, depth = _scene(seed)
        rows = [r for r in range(label.shape[0]) if (label[r] == ROAD).any()]
        road_depth = np.array([depth[r][label[r] == ROAD].mean() for r in rows])
        assert len(rows) > 20
        assert np.all(np.diff(road_depth) < 0), 'road depth must fall row by row towards the car'
        sky = label == SKY
        if sky.any():
            assert np.all(depth[sky] == SKY_DEPTH)
            assert np.nonzero(sky)[0].mean() < min(rows)


def _ground_depth_by_row(label, depth):
    """Depth of the visible ground in each row (NaN where none): it depends on the row only."""
    ground = np.isin(label, (ROAD, SIDEWALK, TERRAIN))
    return np.array([np.median(depth[r][ground[r]]) if ground[r].any() else np.nan
                     for r in range(label.shape[0])])


def test_cars_and_people_stand_in_front_of_the_ground_they_hide():
    for seed in range(6):
        _, label, depth = _scene(seed)
        ground = _ground_depth_by_row(label, depth)
        for r in range(label.shape[0]):
            things = np.isin(label[r], (CAR, PERSON))
            if things.any() and not np.isnan(ground[r]):
                assert depth[r][things].max() <= ground[r] * 1.001, (seed, r)


def test_people_stand_on_the_ground_at_their_depth_and_are_person_sized():
    checked = 0
    for seed in range(8):
        _, label, depth = _scene(seed)
        ground = _ground_depth_by_row(label, depth)
        count, parts = cv2.connectedComponents((label == PERSON).astype(np.uint8))
        for part in range(1, count):
            rows, cols = np.nonzero(parts == part)
            bottom = rows.max()
            feet = cols[rows == bottom]
            if bottom + 2 >= label.shape[0] or np.isnan(ground[bottom + 1]):
                continue
            if not np.isin(label[bottom + 1, feet], (ROAD, SIDEWALK, TERRAIN)).all():
                continue  # feet hidden: the lowest visible row is not the contact
            person = np.median(depth[rows, cols])
            assert person == pytest.approx(ground[bottom + 1], rel=0.2), (seed, part)
            # 1.5-1.95 m tall, focal 0.95-1.25 image widths: pixel height = focal * metres / depth
            pixels = bottom - rows.min() + 1
            if pixels >= 8:
                assert 1.3 <= pixels * person / label.shape[1] <= 2.6, (seed, part)
            checked += 1
    assert checked >= 5


def test_render_scene_is_deterministic_given_the_seed():
    first, again, other = _scene(7), _scene(7), _scene(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_scenes_vary_in_colour_and_layout():
    means = np.array([_scene(seed)[0][_scene(seed)[1] == ROAD].mean(0) for seed in range(6)])
    assert means.std(0).max() > 5, 'road colour must change between scenes'
    horizons = [np.nonzero((_scene(seed)[1] == ROAD).any(1))[0].min() for seed in range(6)]
    assert len(set(horizons)) > 1


def test_render_scene_rejects_bad_arguments():
    with pytest.raises(ValueError, match='at least 16 pixels, got 8x100'):
        render_scene(np.random.default_rng(0), 8, 100)
    with pytest.raises(TypeError, match='numpy.random.Generator'):
        render_scene(0, 64, 64)


# ------------------------------------------------------------------------------------------
# weather
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', CONDITIONS)
def test_each_condition_changes_the_image_deterministically(name):
    rgb, _, depth = _scene(1)
    out = apply_condition(name, rgb, depth, np.random.default_rng(0))
    again = apply_condition(name, rgb, depth, np.random.default_rng(0))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, again)
    assert np.abs(out.astype(float) - rgb).mean() > 15


def test_night_is_dark_and_fog_and_snow_are_bright():
    rgb, _, depth = _scene(2)
    mean = {name: apply_condition(name, rgb, depth, np.random.default_rng(0)).mean()
            for name in CONDITIONS}
    assert mean['night'] < 0.7 * rgb.mean()
    assert mean['fog'] > rgb.mean() and mean['snow'] > rgb.mean()


def _depth_ramp(height=32, width=100, near=1.0, far=300.0):
    depth = np.repeat(np.geomspace(near, far, width, dtype=np.float32)[None], height, 0)
    return np.full((height, width, 3), 40, np.uint8), depth


def test_fog_moves_far_pixels_towards_the_airlight():
    img, depth = _depth_ramp()
    out = fog(img, depth, np.random.default_rng(0), severity=0.5).astype(float)
    airlight = fog(img, np.full_like(depth, SKY_DEPTH), np.random.default_rng(0), 0.5).astype(float)
    gap = np.abs(out - airlight).mean((0, 2))  # per column, near (left) to far (right)
    assert np.abs(out[:, 0] - 40).max() < 10, 'at 1 m fog barely changes the image'
    assert gap[-1] < 0.1 * gap[0]
    assert np.all(np.diff(out.mean((0, 2))) >= -1.0), 'brightness grows with depth'


def test_fog_thickens_with_severity():
    img, depth = _depth_ramp()
    light, heavy = (fog(img, depth, np.random.default_rng(0), s).astype(float) for s in (0.2, 0.9))
    middle = slice(40, 60)
    assert heavy[:, middle].mean() > light[:, middle].mean() + 20


def test_apply_condition_names_the_valid_conditions():
    rgb, _, depth = _scene(0, 32, 32)
    with pytest.raises(ValueError, match="'hail'.*fog, night, rain, snow"):
        apply_condition('hail', rgb, depth, np.random.default_rng(0))


@pytest.mark.parametrize('name', CONDITIONS)
def test_conditions_reject_bad_severity_and_shapes(name):
    rgb, _, depth = _scene(0, 32, 32)
    with pytest.raises(ValueError, match=r'severity must be in \(0, 1\], got 1.5'):
        apply_condition(name, rgb, depth, np.random.default_rng(0), 1.5)
    with pytest.raises(ValueError, match=r'depth must be an array of shape \(32, 32\)'):
        apply_condition(name, rgb, depth[:10], np.random.default_rng(0))
    with pytest.raises(ValueError, match='uint8 RGB'):
        apply_condition(name, rgb.astype(np.float32), depth, np.random.default_rng(0))


def test_apply_weather_transform_is_registered_and_repeatable():
    rgb, _, _ = _scene(4, 64, 128)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    transform = TRANSFORMS.build(dict(type='ApplyWeather', condition='night'))
    first = transform(dict(img=bgr.copy(), img_path='a.png'))['img']
    again = transform(dict(img=bgr.copy(), img_path='a.png'))['img']
    other = transform(dict(img=bgr.copy(), img_path='b.png'))['img']
    assert first.shape == bgr.shape and first.mean() < 0.7 * bgr.mean()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    with pytest.raises(ValueError, match='valid names are fog, night, rain, snow'):
        TRANSFORMS.build(dict(type='ApplyWeather', condition='smog'))


# ------------------------------------------------------------------------------------------
# write_synthetic_acdc (tools/make_synthetic_acdc.py)
# ------------------------------------------------------------------------------------------

TINY = dict(num_source_train=3, num_source_val=1, num_target=3, frames_per_sequence=2, width=64,
            height=32)


def test_make_synthetic_acdc_writes_the_cityscapes_and_acdc_layouts(tmp_path):
    meta = write_synthetic_acdc(str(tmp_path), workers=1, **TINY)
    expected = ['meta.json']
    for split, stems in (('train', ['ashford_000000_000019', 'brightwater_000000_000019',
                                    'coldharbour_000000_000019']),
                         ('val', ['dunmore_000000_000019'])):
        for stem in stems:
            city = stem.split('_')[0]
            expected += [f'leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png',
                         f'gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png']
    for cond, base in (('fog', 475), ('night', 351), ('rain', 400), ('snow', 122)):
        for seq, frame in ((base, 37), (base, 74), (base + 1, 37)):
            stem = f'GOPR{seq:04d}/GOPR{seq:04d}_frame_{frame:06d}'
            expected += [f'rgb_anon/{cond}/train/{stem}_rgb_anon.png',
                         f'gt/{cond}/train/{stem}_gt_labelTrainIds.png']
    assert _files(tmp_path) == sorted(expected)
    img = cv2.imread(
        str(tmp_path / 'rgb_anon/fog/train/GOPR0475/GOPR0475_frame_000037_rgb_anon.png'))
    label = cv2.imread(
        str(tmp_path / 'gtFine/val/dunmore/dunmore_000000_000019_gtFine_labelTrainIds.png'),
        cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 64, 3) and label.shape == (32, 64) and label.dtype == np.uint8
    assert meta['counts'] == {'source': {'train': 3, 'val': 1}, 'fog': {'train': 3},
                              'night': {'train': 3}, 'rain': {'train': 3}, 'snow': {'train': 3}}
    assert osp.isfile(tmp_path / 'meta.json')


def test_make_synthetic_acdc_output_is_independent_of_the_worker_count(tmp_path):
    args = dict(TINY, conditions=['fog', 'snow'], seed=5)
    write_synthetic_acdc(str(tmp_path / 'one'), workers=1, **args)
    write_synthetic_acdc(str(tmp_path / 'two'), workers=2, **args)
    files = [f for f in _files(tmp_path / 'one') if f.endswith('.png')]
    assert files == [f for f in _files(tmp_path / 'two') if f.endswith('.png')]
    for f in files:
        assert (tmp_path / 'one' / f).read_bytes() == (tmp_path / 'two' / f).read_bytes(), f


def test_make_synthetic_acdc_refuses_to_mix_with_an_earlier_run(tmp_path):
    write_synthetic_acdc(str(tmp_path), workers=1, **TINY)
    with pytest.raises(FileExistsError, match='--overwrite'):
        write_synthetic_acdc(str(tmp_path), workers=1, **TINY)
    write_synthetic_acdc(str(tmp_path), overwrite=True, workers=1, num_target=1,
                         num_source_train=0, num_source_val=0)
    assert len(_files(tmp_path / 'rgb_anon')) == 4


def test_severity_option_takes_one_value_or_per_condition_values():
    assert parse_severity(['0.3'], ['fog', 'snow']) == {'fog': 0.3, 'snow': 0.3}
    parsed = parse_severity(['fog=0.2', 'snow=1'], list(CONDITIONS))
    assert parsed['fog'] == 0.2 and parsed['snow'] == 1.0 and parsed['night'] == 0.8
    with pytest.raises(ValueError, match="unknown condition 'hail'"):
        parse_severity(['hail=0.5'], list(CONDITIONS))
    with pytest.raises(ValueError, match=r'in \(0, 1\]'):
        parse_severity(['0'], list(CONDITIONS))


def test_calibration_renders_the_val_scenes_of_the_generator_and_the_same_scenes_clean(tmp_path):
    small = dict(seed=3, height=32, width=64, frames_per_sequence=2)
    write_synthetic_acdc(str(tmp_path / 'gen'), workers=1, num_source_train=2, num_source_val=2,
                         num_target=2, num_target_val=2, severity=dict.fromkeys(CONDITIONS, 0.7),
                         **small)
    run_tasks(calibration_tasks(['night', 'snow'], 2, 0.7, **small), str(tmp_path / 'cal'), 1)
    run_tasks(calibration_tasks(['night', 'snow'], 2, None, **small), str(tmp_path / 'clean'), 1)
    files = _files(tmp_path / 'cal')
    assert files == [f for f in _files(tmp_path / 'gen') if re.search('(night|snow)/val/', f)]
    assert len(files) == 8
    # none of them is a scene the generator shows elsewhere (the stream, the source splits)
    labels = [f for f in _files(tmp_path / 'gen') if 'label' in f and f.endswith('.png')]
    for f in files:
        if 'label' in f:
            mine = (tmp_path / 'cal' / f).read_bytes()
            assert [g for g in labels if (tmp_path / 'gen' / g).read_bytes() == mine] == [f]
    assert files == _files(tmp_path / 'clean')
    for f in files:
        assert (tmp_path / 'cal' / f).read_bytes() == (tmp_path / 'gen' / f).read_bytes(), f
    task = calibration_tasks(['snow'], 1, None, **small)[0]
    rgb, label, _ = render_scene(np.random.default_rng(task.seed), 32, 64)
    clean = cv2.imread(str(tmp_path / 'clean' / task.img_path))[..., ::-1]
    weathered = cv2.imread(str(tmp_path / 'cal' / task.img_path))[..., ::-1]
    np.testing.assert_array_equal(clean, rgb)
    assert np.abs(weathered.astype(int) - rgb).mean() > 5
    np.testing.assert_array_equal(
        cv2.imread(str(tmp_path / 'clean' / task.label_path), cv2.IMREAD_UNCHANGED), label)


def test_choose_severity_takes_the_share_nearest_the_target_and_the_milder_on_a_tie():
    clean = {'fog': 60.0, 'night': 50.0}
    measured = {0.2: {'fog': 54.0, 'night': 45.0}, 0.5: {'fog': 45.0, 'night': 35.0},
                1.0: {'fog': 30.0, 'night': 25.0}}
    # fog keeps 0.9, 0.75, 0.5; night keeps 0.9, 0.7, 0.5
    choice = choose_severity(clean, measured, {'fog': 0.8, 'night': 0.6})
    assert choice['fog'] == dict(severity=0.5, retained=0.75, target=0.8)
    assert choice['night']['severity'] == 0.5  # 0.1 from 0.7 and from 0.5: the milder
    assert choose_severity(clean, measured, {'night': 0.2})['night']['severity'] == 1.0
    assert ACDC_RETAINED['night'] == pytest.approx(40.3 / 82.4)
    assert min(ACDC_RETAINED, key=ACDC_RETAINED.get) == 'night'


def test_the_command_line_writes_what_the_generator_writes(tmp_path):
    args = dict(TINY, conditions=['night'], seed=2, severity={'night': 0.5})
    write_synthetic_acdc(str(tmp_path / 'lib'), workers=1, **args)
    proc = subprocess.run([
        sys.executable, osp.join(REPO, 'tools', 'make_synthetic_acdc.py'), '--out',
        str(tmp_path / 'cli'), '--workers', '1', '--conditions', 'night', '--seed', '2',
        '--severity', '0.5'] + [f'--{k.replace("_", "-")}={v}' for k, v in TINY.items()],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert _files(tmp_path / 'lib') == _files(tmp_path / 'cli')
    for f in _files(tmp_path / 'lib'):
        lib, cli = (tmp_path / 'lib' / f).read_bytes(), (tmp_path / 'cli' / f).read_bytes()
        if f == 'meta.json':  # it records the output root and the time taken
            lib, cli = (re.sub(rb'"(out|seconds)": [^,]*,', b'', m) for m in (lib, cli))
        assert lib == cli, f


# ------------------------------------------------------------------------------------------
# ACDCDataset
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def acdc_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('acdc')
    write_synthetic_acdc(str(root), workers=1, num_source_train=0, num_source_val=0,
                         num_target=5, frames_per_sequence=2, width=64, height=32)
    return root


@pytest.fixture
def tree_copy(acdc_tree, tmp_path):
    root = tmp_path / 'acdc'
    shutil.copytree(acdc_tree, root)
    return root


@pytest.fixture
def mmseg_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_acdc_dataset_reads_a_generated_tree_in_the_cotta_order(acdc_tree):
    dataset = ACDCDataset(condition=['night', 'fog'], data_root=str(acdc_tree))
    expected = []
    for cond in ('night', 'fog'):
        folder = acdc_tree / 'rgb_anon' / cond / 'train'
        expected += [(cond, str(folder / rel)) for rel in sorted(_files(folder))]
    got = [(dataset.get_data_info(i)['condition'], dataset.get_data_info(i)['img_path'])
           for i in range(len(dataset))]
    assert got == expected and len(got) == 10
    first = dataset.get_data_info(0)
    assert first['seg_map_path'] == str(acdc_tree / 'gt/night/train/GOPR0351/'
                                        'GOPR0351_frame_000037_gt_labelTrainIds.png')
    assert dataset.metainfo['classes'] == CityscapesDataset.METAINFO['classes']
    assert dataset.metainfo['palette'] == CityscapesDataset.METAINFO['palette']


def test_acdc_dataset_is_built_from_a_config_with_all_conditions_by_default(acdc_tree):
    dataset = DATASETS.build(dict(type='ACDCDataset', data_root=str(acdc_tree)))
    conditions = [dataset.get_data_info(i)['condition'] for i in range(len(dataset))]
    assert conditions == [c for c in CONDITIONS for _ in range(5)]


def test_acdc_dataset_yields_samples_through_the_mmseg_test_pipeline(acdc_tree, mmseg_scope):
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(32, 16), keep_ratio=True),
                dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')]
    dataset = ACDCDataset(condition='snow', data_root=str(acdc_tree), pipeline=pipeline,
                          test_mode=True)
    sample = dataset[3]
    assert tuple(sample['inputs'].shape) == (3, 16, 32)
    gt = sample['data_samples'].gt_sem_seg.data
    assert tuple(gt.shape) == (1, 32, 64)
    assert set(gt.unique().tolist()) <= set(SCENE_CLASSES) | {255}
    assert sample['data_samples'].img_path == dataset.get_data_info(3)['img_path']


def test_acdc_dataset_names_a_missing_directory(tmp_path):
    expected = osp.join(str(tmp_path), 'rgb_anon', 'rain', 'train')
    with pytest.raises(FileNotFoundError, match=re.escape(expected)):
        ACDCDataset(condition='rain', data_root=str(tmp_path))


def test_acdc_dataset_names_a_missing_label_directory(tree_copy):
    shutil.rmtree(tree_copy / 'gt' / 'fog')
    with pytest.raises(FileNotFoundError, match=re.escape(str(tree_copy / 'gt/fog/train'))):
        ACDCDataset(condition='fog', data_root=str(tree_copy))


def test_acdc_dataset_names_an_image_without_its_label(tree_copy):
    label = tree_copy / 'gt/rain/train/GOPR0401/GOPR0401_frame_000037_gt_labelTrainIds.png'
    image = tree_copy / 'rgb_anon/rain/train/GOPR0401/GOPR0401_frame_000037_rgb_anon.png'
    label.unlink()
    with pytest.raises(FileNotFoundError,
                       match=f'{re.escape(str(image))} has no label: expected '
                       f'{re.escape(str(label))}'):
        ACDCDataset(condition='rain', data_root=str(tree_copy))
    dataset = ACDCDataset(condition='rain', data_root=str(tree_copy), allow_missing_labels=True)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [('seg_map_path' in info) for info in infos] == [True, True, False, True, True]


def test_acdc_dataset_needs_consent_to_load_no_labels(acdc_tree):
    with pytest.raises(ValueError, match='allow_missing_labels=True'):
        ACDCDataset(condition='fog', data_root=str(acdc_tree), ann_dir=None)
    dataset = ACDCDataset(condition='fog', data_root=str(acdc_tree), ann_dir=None,
                          allow_missing_labels=True)
    assert len(dataset) == 5 and 'seg_map_path' not in dataset.get_data_info(0)


def test_acdc_dataset_names_an_unreadable_image_and_its_index(tree_copy, mmseg_scope):
    image = tree_copy / 'rgb_anon/night/train/GOPR0352/GOPR0352_frame_000037_rgb_anon.png'
    image.write_bytes(b'not a png')
    dataset = ACDCDataset(condition=['fog', 'night'], data_root=str(tree_copy), test_mode=True,
                          pipeline=[dict(type='LoadImageFromFile')])
    with pytest.raises(RuntimeError, match=f'sample 7 \\({re.escape(str(image))}\\)'):
        dataset[7]


def test_acdc_dataset_rejects_an_unknown_or_repeated_condition(acdc_tree):
    with pytest.raises(ValueError, match="'haze'; valid names are fog, night, rain, snow"):
        ACDCDataset(condition=['fog', 'haze'], data_root=str(acdc_tree))
    with pytest.raises(ValueError, match='lists fog more than once'):
        ACDCDataset(condition=['fog', 'fog'], data_root=str(acdc_tree))


def test_acdc_dataset_names_an_empty_condition_folder(tree_copy):
    folder = tree_copy / 'rgb_anon/snow/train'
    shutil.rmtree(folder)
    (folder / 'GOPR0122').mkdir(parents=True)
    with pytest.raises(ValueError, match=f"'snow': no \\*_rgb_anon.png image under "
                       f'{re.escape(str(folder))}'):
        ACDCDataset(condition='snow', data_root=str(tree_copy))


def test_the_calibrated_stream_is_made_at_the_severities_the_calibration_chose():
    with open(osp.join(REPO, 'results', 'calibration', 'severity.json')) as f:
        choice = json.load(f)['choice']
    with open(osp.join(REPO, 'Makefile')) as f:
        line, = [x for x in f if x.startswith('CALIBRATED_SEVERITY :=')]
    made = parse_severity(line.split(':=')[1].split(), list(CONDITIONS))
    assert made == {cond: choice[cond]['severity'] for cond in CONDITIONS}
