"""Stream orders (mixed domains, class-sorted and Dirichlet label shift) and the -C loaders."""
import math
import os.path as osp

import numpy as np
import pytest
from torch.utils.data import Dataset

from stag_seg.datasets import StreamDataset, stream_order


def _labels(num=400, classes=10, seed=0):
    return np.random.default_rng(seed).integers(0, classes, num).tolist()


def test_sequential_and_mixed_orders():
    assert stream_order(5) == [0, 1, 2, 3, 4]
    mixed = stream_order(100, 'mixed', seed=1)
    assert sorted(mixed) == list(range(100))
    assert mixed == stream_order(100, 'mixed', seed=1) != stream_order(100, 'mixed', seed=2)
    # two domains of 50: a shuffled stream switches domain about every other sample
    switches = sum((a < 50) != (b < 50) for a, b in zip(mixed, mixed[1:]))
    assert switches > 30


def test_class_sorted_groups_every_class_once():
    labels = _labels()
    order = stream_order(len(labels), 'class_sorted', labels, 10, seed=3)
    assert sorted(order) == list(range(len(labels)))
    seen = [labels[i] for i in order]
    runs = [c for i, c in enumerate(seen) if i == 0 or c != seen[i - 1]]
    assert sorted(runs) == list(range(10))  # each class is one contiguous block
    assert runs != list(range(10))  # in a seeded order of classes, not 0..9
    assert order == stream_order(len(labels), 'class_sorted', labels, 10, seed=3)


def _slot_entropy(labels, order, slots, classes=10):
    """Mean entropy of the class histogram over consecutive windows of the stream."""
    size = len(order) // slots
    out = []
    for k in range(slots):
        counts = np.bincount([labels[i] for i in order[k * size:(k + 1) * size]],
                             minlength=classes)
        p = counts[counts > 0] / counts.sum()
        out.append(float(-(p * np.log(p)).sum()))
    return sum(out) / len(out)


def test_the_dirichlet_order_is_a_label_shift_that_alpha_controls():
    labels = _labels(1000)
    shifted = stream_order(1000, 'dirichlet', labels, 10, seed=0, alpha=0.01, num_slots=20)
    mild = stream_order(1000, 'dirichlet', labels, 10, seed=0, alpha=100.0, num_slots=20)
    assert sorted(shifted) == sorted(mild) == list(range(1000))
    low, high = _slot_entropy(labels, shifted, 20), _slot_entropy(labels, mild, 20)
    assert low < 0.6 * math.log(10) < high  # few classes per window vs. nearly all
    assert shifted == stream_order(1000, 'dirichlet', labels, 10, seed=0, alpha=0.01,
                                   num_slots=20)


@pytest.mark.parametrize('kwargs, match', [
    (dict(order='shuffled'), "unknown stream order 'shuffled'"),
    (dict(order='class_sorted'), "the 'class_sorted' order needs the labels"),
    (dict(order='dirichlet', labels=[0, 1, 12], num_classes=10),
     r'labels \[12\] outside the 10 classes'),
    (dict(order='dirichlet', labels=[0, 1, 2], alpha=0.0), 'alpha must be > 0'),
])
def test_bad_orders_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stream_order(3, **kwargs)


class _Labelled(Dataset):
    def __init__(self, name, labels):
        self.name, self.labels = name, labels
        self.metainfo = dict(classes=[f'c{i}' for i in range(3)])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return (self.name, i, self.labels[i])

    def get_gt_labels(self):
        return np.array(self.labels)


def test_stream_dataset_reads_its_data_sets_in_the_order():
    a, b = _Labelled('a', [0, 1, 2, 0]), _Labelled('b', [2, 2, 1])
    stream = StreamDataset([a, b], order='class_sorted', seed=0)
    items = [stream[i] for i in range(len(stream))]
    assert sorted(items) == sorted([a[i] for i in range(4)] + [b[i] for i in range(3)])
    classes = [label for _, _, label in items]
    assert classes == sorted(classes, key=lambda c: classes.index(c))  # grouped by class
    assert stream.sources == [0 if name == 'a' else 1 for name, _, _ in items]
    mixed = StreamDataset([a, b], order='mixed', seed=0)
    assert sorted(mixed[i] for i in range(7)) == sorted(items)
    with pytest.raises(ValueError, match='needs at least one data set'):
        StreamDataset([])


@pytest.mark.parametrize('datasets, vary, match', [
    ([dict(type='X'), dict(type='X')], dict(corruption=['fog']), 'exactly one data set config'),
    ([dict(type='X')], dict(corruption=['fog'], severity=[1]), 'takes one key'),
    ([dict(type='X')], dict(corruption='fog'), 'must be a non-empty list'),
    ([dict(type='X')], dict(corruption=[]), 'must be a non-empty list'),
])
def test_bad_vary_settings_are_named(datasets, vary, match):
    with pytest.raises(ValueError, match=match):
        StreamDataset(datasets, vary=vary)


def test_a_mixed_domain_runs_in_the_continual_loop(tiny_tree, tmp_path):
    """fog and night interleaved as one domain of ContinualTestLoop."""
    import json

    import torch
    from conftest import build_segmentor, tiny_segmentor_cfg
    from mmengine.config import Config
    from mmengine.runner import Runner
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    ckpt = str(tmp_path / 'seg.pth')
    torch.save(dict(state_dict=build_segmentor(num_classes=19).state_dict()), ckpt)
    cfg = Config.fromfile(osp.join(root, 'configs', '_base_', 'datasets', 'synthetic_acdc.py'))
    pipeline = cfg.test_pipeline
    conditions = [dict(type='ACDCDataset', data_root=tiny_tree, condition=c, pipeline=pipeline)
                  for c in ('fog', 'night')]
    loader = dict(batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=dict(type='StreamDataset', datasets=conditions, order='mixed', seed=0))
    cfg.merge_from_dict(dict(
        default_scope='mmseg', model=tiny_segmentor_cfg(dict(type='Tent'), num_classes=19),
        work_dir=str(tmp_path / 'work'), experiment_name='mixed_stream', load_from=ckpt,
        log_level='WARNING', randomness=dict(seed=0)))
    cfg.test_dataloader = loader
    cfg.test_cfg = dict(type='ContinualTestLoop', domains=[dict(name='mixed', dataloader=loader)],
                        rounds=1, progress=False)
    runner = Runner.from_cfg(cfg)
    runner.test()
    with open(osp.join(cfg.work_dir, 'tta_results.json')) as f:
        doc = json.load(f)
    assert doc['domains'] == ['mixed'] and doc['records'][0]['num_samples'] == 6
    stream = runner.test_loop.domains[0][1].dataset
    assert sorted(stream.sources) == [0, 0, 0, 1, 1, 1] and stream.sources != [0, 0, 0, 1, 1, 1]


# ------------------------------------------------------------------ corruption benchmarks
def _imagenet_c(root, corruption='gaussian_noise', severities=(3, 5), wnids=('n01', 'n02'),
                per_class=3):
    from PIL import Image
    for sev in severities:
        for wnid in wnids:
            folder = root / corruption / str(sev) / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f'{i}.JPEG')
    return str(root)


def test_imagenet_c_reads_one_domain_with_wnid_labels_and_a_seeded_subset(tmp_path):
    from stag_seg.datasets import ImageNetCDataset
    root = _imagenet_c(tmp_path)
    full = ImageNetCDataset(root, 'gaussian_noise', 5)
    assert len(full) == 6 and full.metainfo['classes'] == ('n01', 'n02')
    assert [full.get_data_info(i)['gt_label'] for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert full.get_data_info(4)['img_path'].endswith(osp.join('gaussian_noise', '5', 'n02',
                                                               '1.JPEG'))
    part = ImageNetCDataset(root, 'gaussian_noise', 5, num_images=4, seed=1)
    paths = [part.get_data_info(i)['img_path'] for i in range(4)]
    assert len(set(paths)) == 4 and paths == [
        ImageNetCDataset(root, 'gaussian_noise', 5, num_images=4, seed=1).get_data_info(i)[
            'img_path'] for i in range(4)]


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(corruption='fog'), FileNotFoundError, "corruption 'fog' not found"),
    (dict(corruption='gaussian_noise', severity=4), FileNotFoundError, 'has no severity 4'),
    (dict(corruption='gaussian_noise', severity=6), ValueError,
     r'severity must be an int in 1\.\.5'),
])
def test_imagenet_c_errors_name_what_is_missing(tmp_path, kwargs, error, match):
    from stag_seg.datasets import ImageNetCDataset
    root = _imagenet_c(tmp_path)
    with pytest.raises(error, match=match):
        ImageNetCDataset(root, **kwargs)


def test_cifar_c_slices_the_severity_and_checks_labels(tmp_path):
    from stag_seg.datasets import CIFARCDataset
    images = np.zeros((5 * 4, 32, 32, 3), np.uint8)
    for k in range(20):
        images[k] = k  # image k of severity s is (s - 1) * 4 + i
    labels = np.tile(np.array([0, 1, 2, 3]), 5)
    np.save(tmp_path / 'snow.npy', images)
    np.save(tmp_path / 'labels.npy', labels)
    data = CIFARCDataset(str(tmp_path), 'snow', severity=3)
    assert len(data) == 4
    assert [int(data.get_data_info(i)['img'][0, 0, 0]) for i in range(4)] == [8, 9, 10, 11]
    assert [data.get_data_info(i)['gt_label'] for i in range(4)] == [0, 1, 2, 3]
    assert len(CIFARCDataset(str(tmp_path), 'snow', severity=3, num_images=2)) == 2
    np.save(tmp_path / 'labels.npy', np.tile(np.array([0, 1, 2, 30]), 5))
    with pytest.raises(ValueError, match=r'labels \[30\] outside the 10 classes'):
        CIFARCDataset(str(tmp_path), 'snow', severity=3)
    with pytest.raises(FileNotFoundError, match='CIFAR-C file not found: .*fog.npy'):
        CIFARCDataset(str(tmp_path), 'fog')
