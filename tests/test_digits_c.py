"""The embedded classification benchmark: clean digits, the array loader, the small CNN, the
committed source checkpoints, the four settings and the model families (config overlays), the
learning rate at batch size 1, and the benchmark suite with its table."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

import stag_seg  # noqa: F401
from stag_seg.datasets import CORRUPTIONS, NumpyClsDataset
from stag_seg.datasets.domains import domain_dataloader
from stag_seg.datasets.generators import write_digits
from stag_seg.engine import build_config, prepare_config
from stag_seg.suites import (SuiteError, build_run_config, load_suite, plan_runs, rounds_markdown,
                             run_config, run_suite, select_rows, settings_markdown,
                             write_comparison)

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CHECKPOINT = osp.join(ROOT, 'checkpoints/small-convnet_digits.pth')
SUITE = osp.join(ROOT, 'configs/suites/digits-c.py')
SETTINGS = osp.join(ROOT, 'configs/_base_/settings/digits-c_{}.py')
FAMILIES = osp.join(ROOT, 'configs/_base_/families/digits-c_{}.py')
CONFIG = osp.join(ROOT, 'configs/digits_c/small-convnet_{}.py')


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('digits'))
    write_digits(out)
    return out


@pytest.fixture(scope='module')
def digits_c(digits, tmp_path_factory):
    """A small Digits-C in the CIFAR-C layout: 40 test digits, each corruption a different
    amount of noise (the benchmark's own generator is tested in test_corruptions.py)."""
    out = tmp_path_factory.mktemp('digits_c')
    images = np.load(osp.join(digits, 'test/images.npy'))[:40].astype(np.float32)
    labels = np.load(osp.join(digits, 'test/labels.npy'))[:40]
    rng = np.random.default_rng(0)
    for i, name in enumerate(CORRUPTIONS):
        sev = [np.clip(images + rng.normal(0, 10 * s + 2 * i, images.shape), 0, 255)
               for s in range(1, 6)]
        np.save(out / f'{name}.npy', np.concatenate(sev).astype(np.uint8))
    np.save(out / 'labels.npy', labels)
    return str(out), labels


def test_make_digits_writes_a_seeded_split_of_all_1797_scans(digits, tmp_path):
    train = np.load(osp.join(digits, 'train/images.npy'))
    test = np.load(osp.join(digits, 'test/images.npy'))
    labels = np.load(osp.join(digits, 'train/labels.npy'))
    assert train.shape == (997, 32, 32, 3) and test.shape == (800, 32, 32, 3)
    assert train.dtype == test.dtype == np.uint8
    assert len(labels) == 997 and set(labels.tolist()) == set(range(10))
    # dark ink on light paper, grey (three equal channels)
    assert test.mean() > 150 and test.min() < 30
    assert (test[..., 0] == test[..., 2]).all()
    # the clean training and test scans are different images
    flat_train = {img.tobytes() for img in train}
    assert sum(img.tobytes() in flat_train for img in test) < 5
    again = str(tmp_path / 'again')  # the command line writes what the generator writes
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/make_digits.py'), '--out', again],
                   check=True, capture_output=True)
    assert np.array_equal(np.load(osp.join(again, 'test/images.npy')), test)


def test_the_array_loader_and_its_errors(tmp_path):
    images = np.zeros((4, 8, 8, 3), np.uint8)
    np.save(tmp_path / 'images.npy', images)
    np.save(tmp_path / 'labels.npy', np.array([0, 1, 2, 9]))
    data = NumpyClsDataset(str(tmp_path), pipeline=[])
    assert len(data) == 4 and data[3]['gt_label'] == 9 and data[0]['img'].shape == (8, 8, 3)
    np.save(tmp_path / 'labels.npy', np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match=r'labels \[10\] outside the 10 classes'):
        NumpyClsDataset(str(tmp_path), pipeline=[])
    np.save(tmp_path / 'labels.npy', np.array([0, 1]))
    with pytest.raises(ValueError, match='labels for 4 images'):
        NumpyClsDataset(str(tmp_path), pipeline=[])
    np.save(tmp_path / 'images.npy', images[..., 0])
    with pytest.raises(ValueError, match='N x H x W x 3 uint8'):
        NumpyClsDataset(str(tmp_path), pipeline=[])
    with pytest.raises(FileNotFoundError, match='nowhere'):
        NumpyClsDataset(str(tmp_path / 'nowhere'), pipeline=[])


@pytest.mark.parametrize('norm_cfg, norm_type', [
    (dict(type='BN'), torch.nn.BatchNorm2d),
    (dict(type='GN', num_groups=8), torch.nn.GroupNorm),
])
def test_small_convnet_builds_with_the_configured_normalization(norm_cfg, norm_type):
    from mmpretrain.registry import MODELS
    net = MODELS.build(dict(type='SmallConvNet', norm_cfg=norm_cfg))
    out, = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64, 8, 8)
    norms = [m for m in net.modules() if isinstance(m, norm_type)]
    assert len(norms) == 4
    with pytest.raises(ValueError, match='4 channels for 3 strides'):
        MODELS.build(dict(type='SmallConvNet', strides=(1, 2, 2)))


def test_the_committed_checkpoint_classifies_clean_digits(digits):
    """The source model the benchmark adapts: near-perfect on the clean test split."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/digits_c/small-convnet_source.py'))
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    state = torch.load(CHECKPOINT, weights_only=True)
    model.load_state_dict(state['state_dict'], strict=True)
    model.eval()
    images = torch.from_numpy(np.load(osp.join(digits, 'test/images.npy'))).permute(0, 3, 1, 2)
    labels = torch.from_numpy(np.load(osp.join(digits, 'test/labels.npy')))
    with torch.no_grad():
        logits = model(model.data_preprocessor(dict(inputs=list(images)))['inputs'],
                       mode='tensor')
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    assert accuracy > 0.97
    assert abs(100 * accuracy - state['meta']['val_value']) < 0.2
    assert osp.getsize(CHECKPOINT) < 2**20


# ------------------------------------------------------------------------------------------
# the settings and model families: config overlays, and the suite that runs them
# ------------------------------------------------------------------------------------------


@pytest.fixture
def at_root(monkeypatch):
    """The suites name their configs from the repository root, as the tools run them."""
    monkeypatch.chdir(ROOT)


def _suite_config(name, setting, seed=0, family='gn', options=None):
    """The config the benchmark suite runs for ``name`` in ``setting``."""
    suite = load_suite(SUITE)
    run, = plan_runs(suite, [dict(label=name, plain=name)], 'out', [setting], family, [seed])
    assert run.work_dir == osp.join('out', setting, name, f'seed{seed}')
    return build_run_config(suite, run, options)


def _tiny(data_root, source_root, setting):
    """Options that point a run at the fixtures' small Digits-C (8 images at batch size 1)."""
    options = {'test_dataloader.dataset.datasets.0.data_root': data_root,
               'model.tta_method.fisher_data.dataloader.dataset.data_root':
                   osp.join(source_root, 'train')}
    if setting == 'batch1':
        options['test_dataloader.dataset.datasets.0.num_images'] = 8
    return options


def _domain_loader(cfg, domain):
    """``(name, dataloader config)`` of a domain of ``cfg``'s ContinualTestLoop."""
    from mmengine.registry import init_default_scope

    init_default_scope('mmpretrain')
    return domain_dataloader(domain, cfg.test_dataloader.to_dict(),
                             cfg.test_cfg.get('domain_key', 'corruption'))


def _stream(cfg, domain):
    """The data set a domain of ``cfg``'s ContinualTestLoop reads, built as the loop does."""
    from mmengine.registry import DATASETS
    _, loader = _domain_loader(cfg, domain)
    return DATASETS.build(loader['dataset']), loader['batch_size']


# What the benchmark ran before the settings became overlays (the runner built them in Python
# around the plain CIFARCDataset): the loader, loop and seed of each setting with seed 2.
CORRUPTED = dict(type='CIFARCDataset', data_root='data/digits_c', corruption='gaussian_noise',
                 severity=5, num_classes=10, serialize_data=False,
                 pipeline=[dict(type='PackInputs')])
LOOP = dict(type='ContinualTestLoop', domains=list(CORRUPTIONS),
            domain_key='datasets.0.corruption', metric_key='accuracy/top1', rounds=1,
            episodic=False, progress=False, checkpoint_interval=0)
SAMPLER = dict(type='DefaultSampler', shuffle=False)
EXPECTED_SETTINGS = {
    'continual': (
        dict(batch_size=64, num_workers=0, sampler=SAMPLER, dataset=dict(
            type='StreamDataset', datasets=[CORRUPTED], order='mixed', seed=2)),
        LOOP),
    'label_shift': (
        dict(batch_size=64, num_workers=0, sampler=SAMPLER, dataset=dict(
            type='StreamDataset', datasets=[CORRUPTED], order='class_sorted', seed=2)),
        LOOP),
    'batch1': (
        dict(batch_size=1, num_workers=0, sampler=SAMPLER, dataset=dict(
            type='StreamDataset', datasets=[dict(CORRUPTED, num_images=100, seed=2)],
            order='mixed', seed=2)),
        LOOP),
    # one domain that states its data set (so domain_key is not used)
    'mixed': (
        dict(batch_size=64, num_workers=0, sampler=SAMPLER, dataset=dict(
            type='StreamDataset', datasets=[CORRUPTED], order='mixed', seed=2)),
        dict(LOOP, domains=[dict(name='mixed',
                                 dataset=dict(vary=dict(corruption=list(CORRUPTIONS))))])),
}
PREPROCESSOR = dict(type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
                    std=[127.5] * 3, to_rgb=False)
CNN = dict(type='SmallConvNet', channels=(16, 32, 64, 64), strides=(1, 2, 2, 1),
           norm_cfg=dict(type='GN', num_groups=8, requires_grad=True))
CNN_PARTS = dict(data_preprocessor=PREPROCESSOR, neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
                           loss=dict(type='CrossEntropyLoss')))
# (the model's parts, the checkpoint, SAR's learning rate at batch size 1: 3e-3 * 2 * 2 / 64
# for the CNNs, 3e-3 * 2 / 64 for the ViT, which is not doubled below 32)
EXPECTED_FAMILIES = {
    'gn': (dict(CNN_PARTS, backbone=CNN), 'checkpoints/small-convnet_digits.pth', 1.875e-4),
    'bn': (dict(CNN_PARTS, backbone=dict(CNN, norm_cfg=dict(type='BN', requires_grad=True))),
           'checkpoints/small-convnet-bn_digits.pth', 1.875e-4),
    'ln': (dict(CNN_PARTS, backbone=dict(CNN, norm_cfg=dict(type='GN', num_groups=1,
                                                            requires_grad=True))),
           'checkpoints/small-convnet-ln_digits.pth', 1.875e-4),
    'vit': (dict(data_preprocessor=PREPROCESSOR, neck=None,
                 backbone=dict(type='VisionTransformer',
                               arch=dict(embed_dims=64, num_layers=4, num_heads=4,
                                         feedforward_channels=128),
                               img_size=32, patch_size=4, drop_rate=0.0, out_type='cls_token',
                               final_norm=True),
                 head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=64,
                           loss=dict(type='CrossEntropyLoss'))),
            'checkpoints/vit-tiny_digits.pth', 9.375e-5),
}


@pytest.mark.parametrize('family', list(EXPECTED_FAMILIES))
def test_each_setting_and_family_gives_the_config_the_benchmark_ran(family, at_root):
    parts, checkpoint, lr_at_1 = EXPECTED_FAMILIES[family]
    for setting, (loader, loop) in EXPECTED_SETTINGS.items():
        cfg = _suite_config('sar_stag', setting, seed=2, family=family)
        assert cfg.test_dataloader.to_dict() == loader, setting
        assert cfg.test_cfg.to_dict() == loop, setting
        assert cfg.randomness.to_dict() == dict(seed=2) and cfg.log_level == 'WARNING'
        model = cfg.model.to_dict()
        assert {k: model[k] for k in parts} == parts, setting
        assert model['type'] == 'TTAImageClassifier' and model['tta_method']['type'] == 'SAR'
        assert [r['type'] for r in model['tta_method']['regularizers']] == ['STAG']
        assert cfg.load_from == checkpoint
        lr = model['adapt_optim_wrapper']['optimizer']['lr']
        assert lr == (lr_at_1 if setting == 'batch1' else 3e-3), setting


def test_each_family_overlay_is_the_model_its_checkpoint_was_trained_as(at_root):
    """The overlays repeat the train configs' models (which the checkpoints were trained as)."""
    for family, train in (('bn', 'small-convnet-bn_train'), ('ln', 'small-convnet-ln_train'),
                          ('vit', 'vit-tiny_train')):
        trained = Config.fromfile(osp.join(ROOT, 'configs/digits_c', f'{train}.py')).model
        cfg = build_config(CONFIG.format('tent'), [FAMILIES.format(family)])
        for key in ('data_preprocessor', 'backbone', 'neck', 'head'):
            assert cfg.model.get(key) == trained.get(key), (family, key)
    vit = build_config(CONFIG.format('tent'), [FAMILIES.format('vit')])
    assert vit.lr_scaling.below_32 == Config.fromfile(
        osp.join(ROOT, 'configs/_base_/models/vit-tiny_digits.py')).lr_scaling.below_32 == 1.0
    mixed = Config.fromfile(SETTINGS.format('mixed')).test_cfg.domains[0]
    assert mixed.dataset.vary.corruption == Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/digits_c.py')).corruptions


# the learning rate at batch size 1 by each method's rule (3e-3 at batch size 64): 2 * lr / 64
# for Tent and EATA, doubled again for SAR and DeYO, as their scripts do; the ViT's rule does
# not double below 32
LR_AT_1 = {'tent': 9.375e-5, 'tent_stag': 9.375e-5, 'tent_stag_logit': 9.375e-5,
           'eata': 9.375e-5, 'eata_fisher': 9.375e-5, 'eata_stag_fisher': 9.375e-5,
           'sar': 1.875e-4, 'sar_stag': 1.875e-4, 'deyo': 1.875e-4, 'deyo_stag': 1.875e-4,
           'rdumb': 9.375e-5, 'rdumb_stag': 9.375e-5, 'roid': 9.375e-5, 'roid_stag': 9.375e-5}


@pytest.mark.parametrize('family', ['gn', 'vit'])
def test_the_learning_rate_at_batch_size_1_follows_each_methods_rule(family, at_root):
    for name, lr in LR_AT_1.items():
        cfg = _suite_config(name, 'batch1', family=family)
        expected = lr / 2 if family == 'vit' else lr
        assert cfg.model.adapt_optim_wrapper.optimizer.lr == expected, name
        assert cfg.lr_scaling.applied == dict(batch_size=1, stated_lr=3e-3, lr=expected)
        # prepared again (the config the runner dumps): the same rate
        assert prepare_config(cfg).model.adapt_optim_wrapper.optimizer.lr == expected, name
        continual = _suite_config(name, 'continual', family=family)
        assert continual.model.adapt_optim_wrapper.optimizer.lr == 3e-3, name
    for name in ('source', 'norm'):  # nothing learns
        assert 'adapt_optim_wrapper' not in _suite_config(name, 'batch1').model
    # the rule follows the loader's batch size, and a rate set on the command line is stated
    # at batch size 64 like the config's
    cfg = _suite_config('tent', 'continual', family=family, options={
        'test_dataloader.batch_size': 16, 'model.adapt_optim_wrapper.optimizer.lr': 1e-3})
    assert cfg.model.adapt_optim_wrapper.optimizer.lr == pytest.approx(
        1e-3 * 16 / 64 * (1 if family == 'vit' else 2))
    with pytest.raises(KeyError, match=r'lr_scaling.at_2=2.0: not an argument of .*scaled_lr'):
        _suite_config('tent', 'batch1', options={'lr_scaling.at_2': 2.0})


def test_options_of_the_first_regularizer_reach_the_stag_runs_alone(at_root):
    # the former default reading, for every STAG run of a table; the plain runs have no
    # regularizer to change and are left as they are
    options = {'model.tta_method.regularizers.0.mode': 'loss',
               'model.tta_method.regularizers.0.weighting': 'none',
               'model.tta_method.regularizers.0.weight': 1.0}
    for name in ('tent_stag', 'sar_stag', 'eata_stag_fisher'):
        stag, = _suite_config(name, 'continual', options=options).model.tta_method.regularizers
        assert stag == dict(type='STAG', mode='loss', weighting='none', weight=1.0), name
    assert _suite_config('tent', 'continual', options=options).model.tta_method.regularizers == []
    assert 'regularizers' not in _suite_config('source', 'continual',
                                               options=options).model.tta_method


def test_the_seed_of_the_run_is_the_seed_of_its_stream(at_root):
    cfg = build_config(CONFIG.format('tent'), [SETTINGS.format('batch1')],
                       {'randomness.seed': 5})
    assert cfg.test_dataloader.dataset.seed == cfg.test_dataloader.dataset.datasets[0].seed == 5
    with pytest.raises(ValueError, match=r'follow randomness.seed, which is None; set an int'):
        build_config(CONFIG.format('tent'), cfg_options={'randomness.seed': None})
    with pytest.raises(KeyError, match=r"seed_keys: the config has no 'test_dataloader.nowhere'"):
        build_config(CONFIG.format('tent'),
                     cfg_options={'seed_keys': ['test_dataloader.nowhere.seed']})
    # the batch-1 overlay merges into the stream's data set, so it needs a config that has one
    with pytest.raises(ValueError, match=r'test_dataloader.dataset.datasets=.* not a list'):
        build_config(osp.join(ROOT, 'configs/imagenet_c/resnet50_tent.py'),
                     [SETTINGS.format('batch1')])


def test_the_four_settings_give_the_streams_they_name(digits, digits_c, at_root):
    data_root, labels = digits_c
    streams = {}
    for setting in ('continual', 'label_shift', 'batch1', 'mixed'):
        cfg = _suite_config('tent_stag', setting, options=_tiny(data_root, digits, setting))
        assert cfg.randomness.seed == 0
        domains = cfg.test_cfg.domains
        assert len(domains) == (1 if setting == 'mixed' else 15)
        streams[setting] = _stream(cfg, domains[0 if setting == 'mixed' else 4])
        if setting == 'batch1':
            from mmengine.runner import Runner
            _, loader_cfg = _domain_loader(cfg, cfg.test_cfg.domains[4])
            batches = list(Runner.build_dataloader(loader_cfg, seed=0))
            assert len(batches) == 8 and all(len(b['inputs']) == 1 for b in batches)
    data, batch = streams['continual']
    assert batch == 64 and len(data) == 40 and data.datasets[0].corruption == 'glass_blur'
    order = [data.get_data_info(i)['gt_label'] for i in range(40)]
    assert sorted(order) == sorted(labels.tolist()) and order != labels.tolist()  # shuffled
    data, batch = streams['label_shift']
    seen = [data.get_data_info(i)['gt_label'] for i in range(40)]
    runs = [c for i, c in enumerate(seen) if i == 0 or c != seen[i - 1]]
    assert batch == 64 and len(runs) == len(set(seen))  # one block per class
    data, batch = streams['batch1']
    assert batch == 1 and len(data) == 8
    data, batch = streams['mixed']
    assert batch == 64 and len(data) == 15 * 40
    assert [d.corruption for d in data.datasets] == list(CORRUPTIONS)
    assert len(set(data.sources[:60])) > 10  # the corruptions interleave
    # another seed, another order
    other = _suite_config('tent_stag', 'continual', seed=1,
                          options=_tiny(data_root, digits, 'continual'))
    data, _ = _stream(other, other.test_cfg.domains[4])
    assert [data.get_data_info(i)['gt_label'] for i in range(40)] != order


def test_test_tta_runs_a_setting_with_the_benchmarks_lr_and_seed(digits, digits_c, tmp_path,
                                                                  at_root):
    """tools/test_tta.py --overlay gives the config the benchmark suite runs."""
    work = tmp_path / 'sar'
    options = {'test_dataloader.dataset.datasets.0.data_root': digits_c[0],
               'test_dataloader.dataset.datasets.0.num_images': 2, 'randomness.seed': 3,
               'test_cfg.progress': False, 'test_cfg.checkpoint_interval': 0}
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/test_tta.py'), CONFIG.format('sar'),
         '--overlay', SETTINGS.format('batch1'), '--work-dir', str(work), '--cfg-options',
         *[f'{k}={v}' for k, v in options.items()]],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dumped = Config.fromfile(str(work / 'small-convnet_sar.py'))
    assert dumped.model.adapt_optim_wrapper.optimizer.lr == 1.875e-4  # 3e-3 * 2 * 2 / 64
    assert dumped.test_dataloader.dataset.seed == 3
    assert dumped.test_dataloader.dataset.datasets[0].seed == 3
    suite_cfg = _suite_config('sar', 'batch1', seed=3, options=options)
    for key in ('test_dataloader', 'test_cfg', 'model', 'randomness', 'lr_scaling'):
        assert dumped[key] == suite_cfg[key], key
    doc = json.loads((work / 'tta_results.json').read_text())
    assert doc['seed'] == 3 and len(doc['records']) == 15
    assert all(r['num_samples'] == 2 for r in doc['records'])


def test_the_benchmark_runs_a_method_with_stag_end_to_end(digits, digits_c, tmp_path, at_root):
    suite = load_suite(SUITE)
    rows = select_rows(suite, methods=['eata_fisher'], family='gn')
    assert [r['label'] for r in rows] == ['EATA (with Fisher)']
    runs = plan_runs(suite, rows, str(tmp_path), ['batch1'], 'gn', [0])
    assert [r.name for r in runs] == ['eata_fisher', 'eata_stag_fisher']
    doc = run_config(build_run_config(suite, runs[1], _tiny(digits_c[0], digits, 'batch1')))
    assert [r['domain'] for r in doc['records']] == list(CORRUPTIONS)
    assert all(r['steps'] == 8 and r['num_samples'] == 8 for r in doc['records'])
    assert doc['method'] == 'EATA' and doc['regularizers'] == ['STAG']
    assert 0 <= 100 - doc['mean'] <= 100
    assert osp.isfile(tmp_path / 'batch1/eata_stag_fisher/seed0/tta_results.json')


@pytest.mark.parametrize('name', ['rdumb_stag', 'rotta_stag', 'rmt_stag', 'roid_stag'])
def test_the_continual_baselines_run_with_stag_end_to_end(name, digits, digits_c, tmp_path,
                                                          at_root):
    suite = load_suite(SUITE)
    run, = plan_runs(suite, [dict(label=name, plain=name)], str(tmp_path), ['continual'], 'gn',
                     [0])
    options = {'test_dataloader.dataset.datasets.0.data_root': digits_c[0]}
    if name == 'rmt_stag':  # its source images: the fixture's digits, a short warm-up
        options.update({
            'model.tta_method.source_data.dataloader.dataset.data_root':
                osp.join(digits, 'train'),
            'model.tta_method.warmup_samples': 128})
    doc = run_config(build_run_config(suite, run, options))
    assert [r['domain'] for r in doc['records']] == list(CORRUPTIONS)
    assert all(r['num_samples'] == 40 for r in doc['records'])
    # RMT trains the classifier: STAG's anchors follow it
    assert doc['regularizers'] == ['STAG(anchors=live)' if name == 'rmt_stag' else 'STAG']
    assert 0 <= 100 - doc['mean'] <= 100


@pytest.mark.parametrize('family, norm_type', [('bn', torch.nn.BatchNorm2d),
                                               ('ln', torch.nn.GroupNorm),
                                               ('vit', torch.nn.LayerNorm)])
def test_each_family_runs_with_its_committed_checkpoint(family, norm_type, digits, digits_c,
                                                        tmp_path, at_root):
    """A family's overlay swaps in its model and checkpoint; Tent + STAG adapts its norm
    layers."""
    from mmengine.runner import Runner
    suite = load_suite(SUITE)
    run, = plan_runs(suite, [dict(label='Tent', plain='tent_stag')], str(tmp_path), ['batch1'],
                     family, [0])
    doc = run_config(build_run_config(suite, run, _tiny(digits_c[0], digits, 'batch1')))
    assert doc['checkpoint'] == EXPECTED_FAMILIES[family][1]
    assert len(doc['records']) == 15 and doc['regularizers'] == ['STAG']
    cfg = build_config(CONFIG.format('tent_stag'), [FAMILIES.format(family)])
    cfg.work_dir = str(tmp_path / 'build')
    cfg.experiment_name = f'family_{family}'
    model = Runner.from_cfg(cfg).model
    norms = [m for m in model.modules() if isinstance(m, norm_type)]
    assert norms
    if family == 'ln':
        assert all(m.num_groups == 1 for m in norms)


# ------------------------------------------------------------------------------------------
# the tables
# ------------------------------------------------------------------------------------------


def test_the_suite_plans_each_run_once_in_the_tables_order():
    suite = load_suite(SUITE)
    labels = [r['label'] for r in select_rows(suite, family='gn')]
    assert labels == ['Source', 'Tent', 'EATA (with Fisher)', 'SAR', 'DeYO']
    # BatchNorm adds Norm after Source; --with logit the logit reading after Tent, --with
    # continual the continual baselines at the end
    baselines = ['RDumb', 'RoTTA', 'RMT (source replay)', 'ROID']
    rows = select_rows(suite, family='bn', extra=['logit', 'continual'])
    assert [r['label'] for r in rows] == ['Source', 'Norm', 'Tent', 'Tent, STAG logit λ=4',
                                          'EATA (with Fisher)', 'SAR', 'DeYO'] + baselines
    runs = plan_runs(suite, rows[:4], 'out', ['mixed', 'batch1'], 'bn', [1, 0])
    # setting, row, without then with STAG, seed; plain Tent runs once for its two rows
    assert [(r.setting, r.name, r.seed) for r in runs[:9]] == [
        ('mixed', 'source', 1), ('mixed', 'source', 0), ('mixed', 'norm', 1),
        ('mixed', 'norm', 0), ('mixed', 'tent', 1), ('mixed', 'tent', 0),
        ('mixed', 'tent_stag', 1), ('mixed', 'tent_stag', 0), ('mixed', 'tent_stag_logit', 1)]
    assert len(runs) == 2 * 2 * 5
    assert runs[-1].overlays == (FAMILIES.format('bn')[len(ROOT) + 1:],
                                 SETTINGS.format('batch1')[len(ROOT) + 1:])
    assert runs[-1].config == 'configs/digits_c/small-convnet_tent_stag_logit.py'
    with pytest.raises(SuiteError, match=r"--methods 'nothing' is not in the suite"):
        select_rows(suite, methods=['nothing'])
    with pytest.raises(SuiteError, match=r"--family 'gn2': the suite has the families gn, bn"):
        plan_runs(suite, rows, 'out', family='gn2')


def test_the_table_averages_seeds_and_gives_the_change_stag_makes():
    results = {'continual': {
        'source': [dict(seed=0, error=20.0, images_per_s=100.0),
                   dict(seed=1, error=22.0, images_per_s=200.0)],
        'tent': [dict(seed=0, error=30.0), dict(seed=1, error=34.0)],
        'tent_stag': [dict(seed=0, error=25.0), dict(seed=1, error=25.0)]}}
    rows = [dict(label='Source', plain='source'),
            dict(label='Tent', plain='tent', variant='tent_stag')]
    table = settings_markdown(dict(results=results, rows=rows, settings=['continual', 'mixed'],
                                   caption='over seeds 0, 1', variant_label='+ STAG'))
    lines = {line.split(' | ')[0].strip('| '): line for line in table.splitlines()}
    assert lines['method'] == ('| method | continual | + STAG | mean | + STAG mean | '
                               'images/s (continual) | + STAG images/s |')
    # mean ± standard error over the seeds (std / sqrt(2)); images/s where recorded
    assert '| 21.00 ± 1.00 |  | 21.00 |  | 150 |  |' in lines['Source']
    assert '| 32.00 ± 2.00 | 25.00 ± 0.00 (-7.00) | 32.00 | 25.00 |  |  |' in lines['Tent']
    assert table.endswith('\n\nover seeds 0, 1')


def _fake_doc(metric, values, domains, checkpoint, seed=0, images_per_s=10.0):
    """A results document: ``values[round - 1][domain index]``."""
    records = [{'round': r, 'domain': d, 'num_samples': 4, metric: float(v)}
               for r, row in enumerate(values, 1) for d, v in zip(domains, row)]
    return dict(method='Tent', regularizers=[], config='fake.py', checkpoint=checkpoint,
                metric=metric, rounds=len(values), domains=domains, records=records,
                mean=sum(r[metric] for r in records) / len(records), images_per_s=images_per_s,
                seed=seed, versions={})


def _write_doc(path, doc):
    path.mkdir(parents=True)
    (path / 'tta_results.json').write_text(json.dumps(doc))


def test_the_runner_writes_the_digits_c_table_from_two_results(tmp_path, at_root):
    """With --reuse, two results already in --out make the table (nothing is run)."""
    suite = tmp_path / 'digits-c.py'  # the suite without its data check (no data here)
    suite.write_text(f'_base_ = [{SUITE!r}]\nrequires = []\n')
    out = tmp_path / 'out'
    checkpoint = 'checkpoints/small-convnet_digits.pth'
    _write_doc(out / 'continual/tent/seed0', _fake_doc(
        'accuracy', [[70.0] * 15], list(CORRUPTIONS), checkpoint, images_per_s=100.0))
    _write_doc(out / 'continual/tent_stag/seed0', _fake_doc(
        'accuracy', [[75.0] * 15], list(CORRUPTIONS), checkpoint, images_per_s=90.0))
    lines = []
    result = run_suite(str(suite), out=str(out), settings=['continual'], methods=['tent'],
                       seeds=[0], reuse=True, log=lines.append)
    assert '| Tent | 30.00 | 25.00 (-5.00) | 30.00 | 25.00 |' in result['table']
    assert ('Error (%, lower is better) of SmallConvNet (GroupNorm) on Digits-C (severity 5), '
            'mean over the 15 corruptions and over seeds 0 (±') in result['table']
    assert (out / 'table.md').read_text() == result['table'] + '\n'
    doc = json.loads((out / 'table.json').read_text())
    assert list(doc) == ['family', 'settings', 'seeds', 'severity', 'batch1_images', 'minutes',
                         'results', 'rows', 'caption', 'variant_label', 'variant_name']
    assert settings_markdown(doc) == result['table']  # the table is its document's
    assert (doc['family'], doc['settings'], doc['seeds']) == ('gn', ['continual'], [0])
    assert (doc['severity'], doc['batch1_images']) == (5, 100)
    assert doc['results'] == {'continual': {
        'tent': [dict(seed=0, error=30.0, images_per_s=100.0)],
        'tent_stag': [dict(seed=0, error=25.0, images_per_s=90.0)]}}
    assert any('tent_stag' in line and 'reused' in line for line in lines)
    # results another family made are not taken for this one's
    with pytest.raises(SuiteError, match=r'small-convnet_digits.pth.*another --family'):
        run_suite(str(suite), out=str(out), settings=['continual'], methods=['tent'],
                  seeds=[0], family='bn', reuse=True, log=lines.append)
    with pytest.raises(SuiteError, match=r"--settings 'wild' is not in the suite; choose from "
                                         'continual, label_shift, batch1, mixed'):
        run_suite(str(suite), out=str(out), settings=['wild'], reuse=True)


def test_runs_in_worker_processes_give_the_records_of_runs_in_this_one(digits, digits_c,
                                                                       tmp_path, at_root):
    """--jobs 2 runs the same configs, with the threads each worker gets, as --jobs 1."""
    suite = tmp_path / 'digits-c.py'
    suite.write_text(f'_base_ = [{SUITE!r}]\nrequires = []\n')
    options = _tiny(digits_c[0], digits, 'batch1')
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))  # a worker's, for equal sums
    try:
        serial = run_suite(str(suite), out=str(tmp_path / 'serial'), settings=['batch1'],
                           methods=['tent'], seeds=[0], cfg_options=options, log=lambda _: 0)
    finally:
        torch.set_num_threads(threads)
    lines = []
    parallel = run_suite(str(suite), out=str(tmp_path / 'parallel'), settings=['batch1'],
                         methods=['tent'], seeds=[0], cfg_options=options, jobs=2,
                         log=lines.append)
    assert sum('in a process of' in line for line in lines) == 2  # tent and tent_stag
    for name in ('tent', 'tent_stag'):
        docs = [json.loads((tmp_path / run / 'batch1' / name / 'seed0' /
                            'tta_results.json').read_text()) for run in ('serial', 'parallel')]
        assert [r['accuracy'] for r in docs[0]['records']] == \
            [r['accuracy'] for r in docs[1]['records']]
    assert serial['document']['results'].keys() == parallel['document']['results'].keys()
    with pytest.raises(SuiteError, match='jobs must be at least 1, got 0'):
        run_suite(str(suite), out=str(tmp_path / 'none'), settings=['batch1'],
                  methods=['tent'], seeds=[0], cfg_options=options, jobs=0)


def test_the_long_demo_suite_is_the_demo_suite_over_ten_rounds(at_root):
    long, demo = (load_suite(osp.join(ROOT, f'configs/suites/{name}.py'))
                  for name in ('demo-long', 'demo'))
    assert long.rows == demo.rows and long.out != demo.out
    for suite, rounds in ((long, 10), (demo, 3)):
        run, = plan_runs(suite, [dict(label='Tent', plain='tent')], 'out', ['stream'], None,
                         None)
        cfg = build_run_config(suite, run)
        assert cfg.test_cfg.rounds == rounds
        assert cfg.test_cfg.domains == ['fog', 'night', 'rain', 'snow']
        assert not cfg.test_cfg.progress


def test_the_calibrated_demo_suite_is_the_demo_suite_on_the_calibrated_stream(at_root):
    calibrated, demo = (load_suite(osp.join(ROOT, f'configs/suites/{name}.py'))
                        for name in ('demo-calibrated', 'demo'))
    assert calibrated.rows == demo.rows and calibrated.out != demo.out
    assert [r['path'] for r in calibrated.requires] == ['data/synthetic_acdc_calibrated']
    for suite, root in ((calibrated, 'data/synthetic_acdc_calibrated'),
                        (demo, 'data/synthetic_acdc')):
        run, = plan_runs(suite, [dict(label='Tent', plain='tent')], 'out', ['stream'], None,
                         None)
        cfg = build_run_config(suite, run)
        assert cfg.test_dataloader.dataset.data_root == root
        assert cfg.test_cfg.rounds == 3 and cfg.test_dataloader.dataset.split == 'train'


def test_the_runner_writes_the_demo_table_from_two_results(tmp_path, at_root):
    suite = tmp_path / 'demo.py'
    suite.write_text(f'_base_ = [{osp.join(ROOT, "configs/suites/demo.py")!r}]\n'
                     'requires = []\n')
    out = tmp_path / 'out'
    checkpoint = 'checkpoints/segformer-mit-b0_synthetic-cityscapes.pth'
    domains = ['fog', 'snow']
    _write_doc(out / 'tent', _fake_doc('mIoU', [[40.0, 40.0], [30.0, 30.0]], domains,
                                       checkpoint, images_per_s=10.0))
    _write_doc(out / 'tent_stag', _fake_doc('mIoU', [[45.0, 45.0], [35.0, 35.0]], domains,
                                            checkpoint, images_per_s=9.0))
    result = run_suite(str(suite), out=str(out), methods=['tent'], reuse=True, log=lambda _: 0)
    lines = result['table'].splitlines()
    assert lines[0] == ('| method | r1 | r2 | mean | + STAG: r1 | r2 | mean | STAG change '
                        '| images/s | + STAG images/s |')
    assert lines[2] == ('| Tent (entropy) | 40.00 | 30.00 | **35.00** | 45.00 | 35.00 '
                        '| **40.00** | +5.00 | 10.00 | 9.00 |')
    doc = json.loads((out / 'table.json').read_text())
    runs = doc.pop('runs')
    # the table names the suite and the options that made it (what --from-table checks)
    assert doc.pop('suite') == osp.relpath(suite)
    assert doc.pop('cfg_options') == {'test_cfg.rounds': 3, 'test_cfg.progress': False,
                                      'log_level': 'WARNING'}
    assert doc == dict(rounds=2, variant_label='+ STAG', variant_name='STAG', rows=[dict(
        method='Tent (entropy)', config='tent', mean=35.0, per_round=[40.0, 30.0],
        images_per_s=10.0, variant_mean=40.0, variant_per_round=[45.0, 35.0],
        variant_images_per_s=9.0)])
    assert [r['mean'] for r in runs] == [35.0, 40.0]
    assert [(r['checkpoint'], r['seed']) for r in runs] == [(checkpoint, 0)] * 2
    for name in ('comparison.md', 'comparison.csv', 'comparison.png'):
        assert (out / name).stat().st_size > 0
    assert '**45.0**' in (out / 'comparison.md').read_text()
    # every table is its document's: the committed JSON regenerates them
    assert rounds_markdown(dict(doc, runs=runs)) == result['table']
    again = tmp_path / 'again'
    again.mkdir()
    write_comparison(dict(doc, runs=runs), str(again))
    for name in ('comparison.md', 'comparison.csv'):
        assert (again / name).read_text() == (out / name).read_text()
    with pytest.raises(SuiteError, match='the suite runs every config with its own '
                                         'randomness.seed'):
        run_suite(str(suite), out=str(out), methods=['tent'], seeds=[0, 1], reuse=True)


def _demo_suite(tmp_path, name='demo', base='demo'):
    """A demo suite without its data check, at ``tmp_path/<name>.py``."""
    suite = tmp_path / f'{name}.py'
    suite.write_text(f'_base_ = [{osp.join(ROOT, f"configs/suites/{base}.py")!r}]\n'
                     'requires = []\n')
    return suite


def test_a_committed_rounds_table_gains_rows_without_running_its_runs_again(tmp_path, at_root):
    """--from-table: the runs of a table this suite made are taken from its JSON; only the
    new rows' results come from --out, and the new table holds both."""
    suite = _demo_suite(tmp_path)
    checkpoint = 'checkpoints/segformer-mit-b0_synthetic-cityscapes.pth'
    domains = ['fog', 'snow']

    def write(out, name, values, images_per_s):
        doc = _fake_doc('mIoU', values, domains, checkpoint, images_per_s=images_per_s)
        doc['config'] = f'configs/demo/segformer-mit-b0_{name}.py'
        _write_doc(out / name, doc)

    first = tmp_path / 'first'
    write(first, 'tent', [[40.0, 40.0], [30.0, 30.0]], 10.0)
    write(first, 'tent_stag', [[45.0, 45.0], [35.0, 35.0]], 9.0)
    run_suite(str(suite), out=str(first), methods=['tent'], reuse=True, log=lambda _: 0)
    table = str(first / 'table.json')
    second = tmp_path / 'second'
    write(second, 'sar', [[50.0, 50.0], [50.0, 50.0]], 5.0)
    write(second, 'sar_stag', [[51.0, 51.0], [52.0, 52.0]], 4.0)
    lines = []
    result = run_suite(str(suite), out=str(second), methods=['tent', 'sar'], reuse=True,
                       from_table=table, log=lines.append)
    assert sum(f'from {osp.relpath(table)}' in line for line in lines) == 2
    assert sum('reused' in line for line in lines) == 2
    rows = result['table'].splitlines()[2:]
    assert rows == ['| Tent (entropy) | 40.00 | 30.00 | **35.00** | 45.00 | 35.00 | **40.00** '
                    '| +5.00 | 10.00 | 9.00 |',
                    '| SAR | 50.00 | 50.00 | **50.00** | 51.00 | 52.00 | **51.50** | +1.50 '
                    '| 5.00 | 4.00 |']
    # the taken runs' records are the first table's, curves and all
    before = json.loads((first / 'table.json').read_text())['runs']
    after = json.loads((second / 'table.json').read_text())['runs']
    assert after[:2] == before and [r['mean'] for r in after[2:]] == [50.0, 51.5]
    # a run in --out goes before the table's: the table is only where --out has nothing
    write(second, 'tent', [[20.0, 20.0], [20.0, 20.0]], 1.0)
    again = run_suite(str(suite), out=str(second), methods=['tent'], reuse=True,
                      from_table=table, log=lambda _: 0)
    assert again['table'].splitlines()[2].startswith('| Tent (entropy) | 20.00 | 20.00 |')


def test_a_table_is_taken_only_from_the_same_suite_with_the_same_options(tmp_path, at_root):
    suite = _demo_suite(tmp_path)
    checkpoint = 'checkpoints/segformer-mit-b0_synthetic-cityscapes.pth'
    out = tmp_path / 'out'
    for name in ('tent', 'tent_stag'):
        doc = _fake_doc('mIoU', [[40.0], [30.0]], ['fog'], checkpoint)
        doc['config'] = f'configs/demo/segformer-mit-b0_{name}.py'
        _write_doc(out / name, doc)
    run_suite(str(suite), out=str(out), methods=['tent'], reuse=True, log=lambda _: 0)
    table = out / 'table.json'
    fresh = str(tmp_path / 'fresh')
    # the calibrated suite runs the same configs on other data: the demo's runs are not its
    calibrated = _demo_suite(tmp_path, 'calibrated', 'demo-calibrated')
    with pytest.raises(SuiteError,
                       match=r'was made by the suite \S*demo.py, not by \S*calibrated.py'):
        run_suite(str(calibrated), out=fresh, methods=['tent'], from_table=str(table))
    with pytest.raises(SuiteError, match=r"made with the options .*this run has .*'lr'"):
        run_suite(str(suite), out=fresh, methods=['tent'], from_table=str(table),
                  cfg_options={'lr': 1.0})
    doc = json.loads(table.read_text())
    doc['runs'][1]['checkpoint'] = 'checkpoints/other.pth'
    other = tmp_path / 'other.json'
    other.write_text(json.dumps(doc))
    with pytest.raises(SuiteError, match=r'--from-table: .*other.json has checkpoint '
                                         r"'checkpoints/other.pth'"):
        run_suite(str(suite), out=fresh, methods=['tent'], from_table=str(other))
    del doc['suite']
    other.write_text(json.dumps(doc))
    with pytest.raises(SuiteError, match='is not a rounds table that names its suite'):
        run_suite(str(suite), out=fresh, methods=['tent'], from_table=str(other))
    with pytest.raises(SuiteError, match='cannot read .*missing.json'):
        run_suite(str(suite), out=fresh, methods=['tent'],
                  from_table=str(tmp_path / 'missing.json'))
    digits = tmp_path / 'digits-c.py'
    digits.write_text(f'_base_ = [{SUITE!r}]\nrequires = []\n')
    with pytest.raises(SuiteError, match="completes a rounds table; .* writes a 'settings'"):
        run_suite(str(digits), out=fresh, settings=['continual'], methods=['tent'], seeds=[0],
                  from_table=str(table))
