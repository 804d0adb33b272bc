"""CIFAR-10-C / CIFAR-100-C: the RobustBench source models (WRN-28-10, ResNeXt-29), their
checkpoint conversion, the reference repository's stream order, and the configs in
configs/cifar10_c/ and configs/cifar100_c/ (loaded, and one run of each stream on small arrays
this test writes)."""
import copy
import glob
import json
import os.path as osp
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope

from stag_seg.datasets import CORRUPTIONS
from stag_seg.datasets.streams import stream_order
from stag_seg.models import timm_checkpoint as converter

FOLDERS = {'cifar10_c': ('wrn-28-10', 10, 'data/CIFAR-10-C'),
           'cifar100_c': ('resnext-29', 100, 'data/CIFAR-100-C')}
CONFIGS = sorted(p for folder in FOLDERS
                 for p in glob.glob(osp.join(ROOT, 'configs', folder, '*.py')))
METHOD_TYPES = dict(source='Source', norm='Norm', tent='Tent', rdumb='RDumb', rotta='RoTTA',
                    rmt='RMT', roid='ROID')


def _build(cfg: dict) -> torch.nn.Module:
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(copy.deepcopy(cfg))


def _classifier(backbone: dict, channels: int, num_classes: int) -> dict:
    return dict(type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=channels))


def _randomise_bn(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)


# ---------------------------------------------------------------- the released layouts, restated
def _bn(state, name, x):
    return F.batch_norm(x, state[f'{name}.running_mean'], state[f'{name}.running_var'],
                        state[f'{name}.weight'], state[f'{name}.bias'], False, 0.0, 1e-5)


def _wrn_reference(state: dict, x: torch.Tensor, depth: int) -> torch.Tensor:
    """The RobustBench WRN forward from its state dict alone: pre-activation blocks whose
    projected shortcut starts from the activated input, stride 2 in the first block of stages 2
    and 3, a final BN-ReLU, 8x8 average pooling and ``fc``."""
    n = (depth - 4) // 6
    x = F.conv2d(x, state['conv1.weight'], padding=1)
    for stage in (1, 2, 3):
        for b in range(n):
            p = f'block{stage}.layer.{b}'
            stride = 2 if stage > 1 and b == 0 else 1
            act = F.relu(_bn(state, f'{p}.bn1', x))
            out = F.conv2d(act, state[f'{p}.conv1.weight'], stride=stride, padding=1)
            out = F.conv2d(F.relu(_bn(state, f'{p}.bn2', out)), state[f'{p}.conv2.weight'],
                           padding=1)
            short = (F.conv2d(act, state[f'{p}.convShortcut.weight'], stride=stride)
                     if f'{p}.convShortcut.weight' in state else x)
            x = short + out
    x = F.avg_pool2d(F.relu(_bn(state, 'bn1', x)), 8).flatten(1)
    return F.linear(x, state['fc.weight'], state['fc.bias'])


def _resnext_reference(state: dict, x: torch.Tensor, depth: int, cardinality: int) -> torch.Tensor:
    """The RobustBench ResNeXt forward from its state dict: ``(x - mu) / sigma``, stem, three
    stages of bottlenecks (grouped 3x3, stride 2 first in stages 2 and 3), pooling, classifier."""
    n = (depth - 2) // 9
    x = (x - state['mu']) / state['sigma']
    x = F.relu(_bn(state, 'bn_1', F.conv2d(x, state['conv_1_3x3.weight'], padding=1)))
    for stage in (1, 2, 3):
        for b in range(n):
            p = f'stage_{stage}.{b}'
            stride = 2 if stage > 1 and b == 0 else 1
            out = F.conv2d(x, state[f'{p}.conv_reduce.weight'])
            out = F.relu(_bn(state, f'{p}.bn_reduce', out))
            out = F.conv2d(out, state[f'{p}.conv_conv.weight'], stride=stride, padding=1,
                           groups=cardinality)
            out = F.relu(_bn(state, f'{p}.bn', out))
            out = _bn(state, f'{p}.bn_expand', F.conv2d(out, state[f'{p}.conv_expand.weight']))
            if f'{p}.downsample.0.weight' in state:
                x = _bn(state, f'{p}.downsample.1',
                        F.conv2d(x, state[f'{p}.downsample.0.weight'], stride=stride))
            x = F.relu(x + out)
    x = F.avg_pool2d(x, 8).flatten(1)
    return F.linear(x, state['classifier.weight'], state['classifier.bias'])


def _released_state(model: torch.nn.Module, arch: str) -> dict:
    """The model's tensors under the released checkpoint's names (what RobustBench saves)."""
    head = converter.ROBUSTBENCH_HEAD[arch]
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith('backbone.'):
            state[key[len('backbone.'):]] = value
        else:
            state[key.replace('head.fc.', f'{head}.')] = value
    if arch == 'robustbench-resnext':
        state['mu'] = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)
        state['sigma'] = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)
    return state


@pytest.mark.parametrize('arch', ['robustbench-wrn', 'robustbench-resnext'])
def test_a_converted_release_gives_the_released_forward(arch):
    """A state dict in the release's names (with DataParallel's 'module.'), restated functionally,
    and the converted checkpoint in this toolkit's model give the same logits (float64)."""
    torch.manual_seed(0)
    if arch == 'robustbench-wrn':  # WRN-10-2: one block per stage, every block projects
        depth, cfg = 10, _classifier(dict(type='CifarWideResNet', depth=10, widen_factor=2), 128,
                                     10)
    else:  # ResNeXt-11: one bottleneck per stage
        depth, cfg = 11, _classifier(dict(type='CifarResNeXt', depth=11, cardinality=4,
                                          base_width=8), 1024, 7)
    source = _build(cfg).double()
    _randomise_bn(source)
    released = {'module.' + k: v for k, v in _released_state(source, arch).items()}
    model = _build(cfg).double().eval()
    model.load_state_dict(converter.convert(released, arch), strict=True)
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    state = {k[len('module.'):]: v for k, v in released.items()}
    if arch == 'robustbench-wrn':
        expected = _wrn_reference(state, x, depth)
        ours = model(x, mode='tensor')
    else:  # the data preprocessor's (x - 127.5) / 127.5 on 0-255 units is (x - 0.5) / 0.5
        expected = _resnext_reference(state, x, depth, cardinality=4)
        ours = model((x - 0.5) / 0.5, mode='tensor')
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_the_full_size_models_have_the_released_parameter_counts():
    """WRN-28-10: 36,479,194 parameters (36.5 M, Zagoruyko & Komodakis, Table 1 of the WRN
    paper); ResNeXt-29 (4 x 32d): 6,900,132, counted on RobustBench's own model definition."""
    wrn = _build(_classifier(dict(type='CifarWideResNet'), 640, 10))
    resnext = _build(_classifier(dict(type='CifarResNeXt'), 1024, 100))
    assert sum(p.numel() for p in wrn.parameters()) == 36_479_194
    assert sum(p.numel() for p in resnext.parameters()) == 6_900_132


def test_the_converter_refuses_foreign_keys_and_another_normalisation():
    model = _build(_classifier(dict(type='CifarResNeXt', depth=11, base_width=8), 1024, 5))
    state = _released_state(model, 'robustbench-resnext')
    assert 'head.fc.weight' in converter.convert(state, 'robustbench-resnext')
    with pytest.raises(KeyError, match='extra.weight'):
        converter.convert({**state, 'extra.weight': torch.zeros(1)}, 'robustbench-resnext')
    with pytest.raises(KeyError, match='not in the robustbench-wrn layout'):  # ResNeXt as WRN
        converter.convert(state, 'robustbench-wrn')
    with pytest.raises(ValueError, match='mean = std = 0.5'):
        converter.convert({**state, 'mu': torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1)},
                          'robustbench-resnext')


@pytest.mark.parametrize('bad', [dict(depth=12), dict(widen_factor=0)])
def test_a_wrn_that_cannot_be_built_is_refused(bad):
    from stag_seg.models import CifarWideResNet
    with pytest.raises(ValueError, match='CifarWideResNet'):
        CifarWideResNet(**bad)


# ------------------------------------------------------------------------------- the stream
@pytest.mark.parametrize('seed', [1, 7])
def test_python_shuffle_is_the_reference_repositorys_order(seed):
    """mariodoebler/test-time-adaptation: random.seed(RNG_SEED); random.shuffle(samples)."""
    samples = list(range(10000))
    random.seed(seed)
    random.shuffle(samples)
    assert stream_order(10000, 'python_shuffle', seed=seed) == samples
    assert stream_order(10000, 'python_shuffle', seed=seed) != stream_order(10000, 'mixed',
                                                                           seed=seed)


# ------------------------------------------------------------------------------ the configs
def _parts(path: str) -> tuple[str, str, str, bool]:
    folder = osp.basename(osp.dirname(path))
    name = osp.basename(path)[:-3]
    arch, rest = name.split('_', 1)
    return folder, arch, rest.split('_')[0], '_stag' in name


def test_every_method_has_a_stag_sibling_in_both_folders():
    for folder, (arch, _, _) in FOLDERS.items():
        names = {osp.basename(p) for p in CONFIGS if f'{osp.sep}{folder}{osp.sep}' in p}
        for method in ('tent', 'rdumb', 'rotta', 'roid', 'rmt', 'rmt_source-free'):
            stag = method.replace('_source-free', '_stag_source-free') if 'source-free' in \
                method else f'{method}_stag'
            assert {f'{arch}_{method}.py', f'{arch}_{stag}.py'} <= names, (folder, method)
        assert {f'{arch}_source.py', f'{arch}_norm.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_each_cifar_c_config_is_the_reference_yaml(path):
    """The reference's cfgs/<folder>/<method>.yaml: Adam 1e-3 (betas 0.9/0.999, no decay) for
    every adapting method, batch size 200, severity 5, the 15 corruptions, seed 1."""
    folder, arch, method, stag = _parts(path)
    _, num_classes, data_root = FOLDERS[folder]
    cfg = Config.fromfile(path)
    assert arch == FOLDERS[folder][0]
    tta = cfg.model.tta_method
    assert tta.type == METHOD_TYPES[method]
    regs = tta.get('regularizers', [])
    if stag:
        expected = (dict(type='STAG', anchors='live') if method == 'rmt' else
                    Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'tta', 'stag.py')).stag)
        assert regs == [expected]
    else:
        assert not regs
    if method not in ('source', 'norm'):
        optimizer = cfg.model.adapt_optim_wrapper.optimizer
        assert (optimizer.type, optimizer.lr, tuple(optimizer.betas),
                optimizer.weight_decay) == ('Adam', 1e-3, (0.9, 0.999), 0.0)
    if method == 'rdumb':
        assert (tta.reset_every, tta.d_margin, tta.e0) == (1000, 0.4, None)
    if method == 'rmt':
        source_free = 'source-free' in path
        assert (tta.lambda_ce_src, tta.warmup_samples) == ((0.0, 0) if source_free
                                                           else (1.0, 50000))
        source = tta.source_data.dataloader
        assert source.batch_size == 200 and source.sampler.shuffle
        assert (source.dataset.type, source.dataset.split, source.dataset.download) == (
            'CIFAR10' if num_classes == 10 else 'CIFAR100', 'train', False)
    assert cfg.model.head.num_classes == num_classes == cfg.model.data_preprocessor.num_classes
    assert cfg.test_dataloader.batch_size == 200 and cfg.randomness.seed == 1
    stream = cfg.test_dataloader.dataset
    assert (stream.type, stream.order, stream.seed) == ('StreamDataset', 'python_shuffle', 1)
    (domain, ) = stream.datasets
    assert (domain.type, domain.data_root, domain.severity, domain.num_classes) == (
        'CIFARCDataset', data_root, 5, num_classes)
    assert list(cfg.test_cfg.domains) == list(CORRUPTIONS) and cfg.test_cfg.rounds == 1
    assert cfg.seed_keys == ['test_dataloader.dataset.seed']


@pytest.mark.parametrize('path', [p for p in CONFIGS if _parts(p)[3]],
                         ids=lambda p: osp.relpath(p, ROOT))
def test_a_stag_config_differs_from_its_plain_sibling_only_by_the_regularizer(path):
    plain = path.replace('_stag', '')
    with_stag, without = Config.fromfile(path).to_dict(), Config.fromfile(plain).to_dict()
    with_stag.pop('stag', None)
    assert with_stag['model']['tta_method'].pop('regularizers')
    assert without['model']['tta_method'].pop('regularizers') == []
    assert with_stag == without


@pytest.mark.parametrize('folder', list(FOLDERS))
def test_the_models_normalise_as_their_checkpoints_were_trained(folder):
    arch, num_classes, _ = FOLDERS[folder]
    cfg = Config.fromfile(osp.join(ROOT, 'configs', folder, f'{arch}_source.py'))
    pre = cfg.model.data_preprocessor
    # the WRN takes [0, 1] (no normalisation), the ResNeXt (x - 0.5) / 0.5; the arrays are RGB
    expected = ([0.0] * 3, [255.0] * 3) if arch == 'wrn-28-10' else ([127.5] * 3, [127.5] * 3)
    assert (list(pre.mean), list(pre.std), pre.to_rgb) == (*expected, False)


# ------------------------------------------------------------------------------- a real run
@pytest.mark.slow
@pytest.mark.parametrize('path', ['configs/cifar10_c/wrn-28-10_roid_stag.py',
                                  'configs/cifar100_c/resnext-29_rotta.py'])
def test_a_config_runs_its_stream_from_the_released_array_layout(path, tmp_path):
    """Small arrays in the CIFAR-C layout (5 severities of 12 images per corruption) and a small
    model of the config's family: tools/test_tta.py adapts over the 15 corruptions and reports
    each, 12 images (severity 5) per domain."""
    folder = path.split('/')[1]
    arch, num_classes, _ = FOLDERS[folder]
    rng = np.random.default_rng(0)
    root = tmp_path / 'data'
    root.mkdir()
    np.save(root / 'labels.npy', rng.integers(0, num_classes, 60))
    for name in CORRUPTIONS:
        np.save(root / f'{name}.npy', rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8))
    if arch == 'wrn-28-10':
        backbone, channels = dict(type='CifarWideResNet', depth=10, widen_factor=1), 64
        small = ['model.backbone.depth=10', 'model.backbone.widen_factor=1',
                 'model.head.in_channels=64']
    else:
        backbone, channels = dict(type='CifarResNeXt', depth=11, base_width=8), 1024
        small = ['model.backbone.depth=11', 'model.backbone.base_width=8']
    torch.manual_seed(0)  # a checkpoint as the converter writes it, of the small model
    source = _build(_classifier(backbone, channels, num_classes))
    _randomise_bn(source)
    checkpoint = str(tmp_path / 'source.pth')
    torch.save(dict(state_dict=source.state_dict()), checkpoint)
    work = tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test_tta.py'), osp.join(ROOT, path),
         checkpoint, '--work-dir', str(work), '--cfg-options', *small,
         'test_dataloader.batch_size=4',
         'test_dataloader.num_workers=0', 'test_cfg.progress=False',
         f'test_dataloader.dataset.datasets.0.data_root={root}'],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(work / 'tta_results.json') as f:
        doc = json.load(f)
    assert doc['domains'] == list(CORRUPTIONS) and doc['seed'] == 1
    assert [r['num_samples'] for r in doc['records']] == [12] * 15
    assert doc['method'] == ('ROID' if 'roid' in path else 'RoTTA')
