"""The embedded classification benchmark: clean digits, the array loader, the small CNN, the
committed source checkpoint, and the four settings of tools/run_cls_benchmark.py."""
import argparse
import importlib.util
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

import stag_seg  # noqa: F401
from stag_seg.datasets import CORRUPTIONS, NumpyClsDataset
from stag_seg.datasets.domains import domain_dataloader, set_by_path
from stag_seg.datasets.generators import write_digits

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CHECKPOINT = osp.join(ROOT, 'checkpoints/small-convnet_digits.pth')


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_a_dotted_domain_key_reaches_into_wrapped_datasets():
    cfg = dict(type='StreamDataset', datasets=[dict(type='CIFARCDataset', corruption='x')])
    set_by_path(cfg, 'datasets.0.corruption', 'fog')
    assert cfg['datasets'][0]['corruption'] == 'fog'
    set_by_path(cfg, 'order', 'mixed')
    assert cfg['order'] == 'mixed'
    with pytest.raises(KeyError, match="no item '1'"):
        set_by_path(cfg, 'datasets.1.corruption', 'fog')
    with pytest.raises(KeyError, match="has no 'dataset'"):
        set_by_path(cfg, 'dataset.corruption', 'fog')


def _args(data_root, source_root, out='unused'):
    return argparse.Namespace(severity=3, batch1_images=8, data_root=data_root,
                              source_root=source_root, out=out, seeds=[0])


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


def test_the_four_settings_give_the_streams_they_name(digits, digits_c):
    bench = _tool('run_cls_benchmark')
    data_root, labels = digits_c
    base = Config.fromfile(bench.CONFIG.format('tent_stag'))
    args = _args(data_root, digits)
    streams = {}
    for setting in bench.SETTINGS:
        cfg = bench.setting_config(base, setting, 0, args)
        assert cfg.randomness.seed == 0
        domains = cfg.test_cfg.domains
        assert len(domains) == (1 if setting == 'mixed' else 15)
        streams[setting] = _stream(cfg, domains[0 if setting == 'mixed' else 4])
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
    from mmengine.runner import Runner
    cfg = bench.setting_config(base, 'batch1', 0, args)
    _, loader_cfg = _domain_loader(cfg, cfg.test_cfg.domains[4])
    batches = list(Runner.build_dataloader(loader_cfg, seed=0))
    assert len(batches) == 8 and all(len(b['inputs']) == 1 for b in batches)
    data, batch = streams['mixed']
    assert batch == 64 and len(data) == 15 * 40
    assert [d.corruption for d in data.datasets] == list(CORRUPTIONS)
    sources = data.sources
    assert len(set(sources[:60])) > 10  # the corruptions interleave
    # the learning rate follows the batch at batch size 1 by each method's rule: 2 * lr / 64
    # for Tent, doubled again for SAR and DeYO, as their scripts do
    lr = base.model.adapt_optim_wrapper.optimizer.lr
    cfg = bench.setting_config(base, 'batch1', 0, args)
    assert cfg.model.adapt_optim_wrapper.optimizer.lr == pytest.approx(lr / 32)
    for name in ('sar', 'deyo_stag'):
        method = Config.fromfile(bench.CONFIG.format(name))
        cfg = bench.setting_config(method, 'batch1', 0, args)
        assert cfg.model.adapt_optim_wrapper.optimizer.lr == pytest.approx(lr / 16), name
    # another seed, another order
    other = bench.setting_config(base, 'continual', 1, args)
    data, _ = _stream(other, other.test_cfg.domains[4])
    assert [data.get_data_info(i)['gt_label'] for i in range(40)] != order


def test_the_benchmark_runs_a_method_with_stag_end_to_end(digits, digits_c, tmp_path):
    bench = _tool('run_cls_benchmark')
    args = _args(digits_c[0], digits, str(tmp_path))
    doc = bench.run('eata_stag_fisher', 'batch1', 0, args)
    assert [r['domain'] for r in doc['records']] == list(CORRUPTIONS)
    assert all(r['steps'] == 8 and r['num_samples'] == 8 for r in doc['records'])
    assert doc['method'] == 'EATA' and doc['regularizers'] == ['STAG']
    assert 0 <= bench.error(doc) <= 100
    assert osp.isfile(tmp_path / 'batch1/eata_stag_fisher/seed0/tta_results.json')


def test_the_table_averages_seeds_and_gives_the_change_stag_makes():
    bench = _tool('run_cls_benchmark')
    results = {'continual': {
        'source': [dict(seed=0, error=20.0), dict(seed=1, error=22.0)],
        'tent': [dict(seed=0, error=30.0), dict(seed=1, error=34.0)],
        'tent_stag': [dict(seed=0, error=25.0), dict(seed=1, error=25.0)]}}
    args = argparse.Namespace(settings=['continual'], seeds=[0, 1], severity=5)
    table = bench.markdown(results, [bench.RUNS[0], bench.RUNS[1]], args)
    rows = {line.split(' | ')[0].strip('| '): line for line in table.splitlines()}
    assert '| 21.00 ± 1.41 |  | 21.00 |  |' in rows['Source']
    assert '| 32.00 ± 2.83 | 25.00 ± 0.00 (-7.00) | 32.00 | 25.00 |' in rows['Tent']
    assert 'seeds 0, 1' in table


@pytest.mark.parametrize('family, norm_type', [('bn', torch.nn.BatchNorm2d),
                                               ('ln', torch.nn.GroupNorm),
                                               ('vit', torch.nn.LayerNorm)])
def test_each_family_runs_with_its_committed_checkpoint(family, norm_type, digits, digits_c,
                                                        tmp_path):
    """--family swaps in the model and checkpoint of a normalization family; Tent + STAG adapts
    its norm layers."""
    from mmengine.runner import Runner
    bench = _tool('run_cls_benchmark')
    args = _args(digits_c[0], digits, str(tmp_path))
    args.family = family
    doc = bench.run('tent_stag', 'batch1', 0, args)
    assert doc['checkpoint'].endswith(f'{bench.FAMILIES[family][1]}.pth')
    assert len(doc['records']) == 15 and doc['regularizers'] == ['STAG']
    cfg = Config.fromfile(osp.join(ROOT, 'configs/digits_c',
                                   f'{bench.FAMILIES[family][0]}.py'))
    cfg.work_dir = str(tmp_path / 'build')
    cfg.experiment_name = f'family_{family}'
    model = Runner.from_cfg(cfg).model
    norms = [m for m in model.modules() if isinstance(m, norm_type)]
    assert norms
    if family == 'ln':
        assert all(m.num_groups == 1 for m in norms)
