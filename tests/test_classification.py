"""Classification on ImageNet-C: the classifier tap, norm-only adaptation of each model family,
the configs in configs/imagenet_c/ and tools/convert_timm_classifier.py."""
import copy
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from stag_seg.datasets import CORRUPTIONS
from stag_seg.models import tap_cls_head
from stag_seg.models import timm_checkpoint as converter
from stag_seg.structures import step_stats

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

NUM_CLS = 5
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'imagenet_c', '*.py')))
#: Each checkpoint's input normalisation on [0, 1] RGB, from its own release: torchvision's
#: ImageNet mean/std for ResNet-50 (and timm's default config of resnet50_gn), timm's 0.5/0.5
#: for the augreg ViT-B/16.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CHECKPOINT_NORM = {'resnet50': IMAGENET, 'resnet50-gn': IMAGENET,
                   'vit-b16': ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
#: The public optimizers (EATA/SAR/DeYO main.py): SGD, momentum 0.9, lr at batch size 64.
PUBLIC_LR = {'resnet50': 2.5e-4, 'resnet50-gn': 2.5e-4, 'vit-b16': 1e-3}
NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
#: The continual baselines' ImageNet-C optimizers (type, lr, Nesterov) in
#: mariodoebler/test-time-adaptation's cfgs/imagenet_c/{rdumb,rotta,rmt,roid}.yaml.
REFERENCE_OPTIMIZERS = {'rdumb': ('SGD', 2.5e-4, True), 'rotta': ('Adam', 1e-3, False),
                        'rmt': ('SGD', 0.01, True), 'roid': ('SGD', 2.5e-4, True)}


def _build(cfg: dict) -> nn.Module:
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(copy.deepcopy(cfg))


def _tiny_cfg(family: str, **kwargs) -> dict:
    """A tiny mmpretrain classifier of a family: 'bn_resnet', 'gn_resnet', 'ln_vit' (+ '_hidden':
    the ViT head gets a pre-logits linear layer before its classifier)."""
    cfg = dict(type='ImageClassifier',
               data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=NUM_CLS,
                                      mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True))
    if family.endswith('resnet'):
        norm = dict(type='GN', num_groups=4) if family == 'gn_resnet' else dict(type='BN')
        cfg.update(backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8,
                                 out_indices=(3, ), norm_cfg=norm),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=NUM_CLS, in_channels=64))
    else:
        cfg.update(backbone=dict(type='VisionTransformer', img_size=32, patch_size=8,
                                 arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                           feedforward_channels=64)),
                   head=dict(type='VisionTransformerClsHead', num_classes=NUM_CLS, in_channels=32,
                             hidden_dim=16 if family.endswith('hidden') else None))
    cfg.update(kwargs)
    return cfg


def _batch(seed: int = 0, num: int = 6) -> dict:
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8)
              for _ in range(num)]
    return dict(inputs=images, data_samples=[DataSample().set_gt_label(i % NUM_CLS)
                                             for i in range(num)])


# ---------------------------------------------------------------------------------- the tap
@pytest.mark.parametrize('family', ['bn_resnet', 'ln_vit', 'ln_vit_hidden'])
def test_the_tap_takes_the_final_linear_classifier_of_the_head(family):
    torch.manual_seed(0)
    model = _build(_tiny_cfg(family)).eval()
    tap = tap_cls_head(model)
    if family == 'bn_resnet':
        assert tap.layer is model.head.fc
    else:
        assert tap.layer is model.head.layers.head
        if family == 'ln_vit_hidden':  # the head's first Linear is pre_logits, not the classifier
            assert isinstance(model.head.layers.pre_logits, nn.Linear)
            assert tap.layer is not model.head.layers.pre_logits
    assert tap.weight.shape[0] == NUM_CLS
    data = model.data_preprocessor(_batch(), False)
    with torch.no_grad(), tap.capture():
        predictions = model.predict(data['inputs'], data['data_samples'])
        out = tap.output()
    scores = torch.stack([p.pred_score for p in predictions])
    torch.testing.assert_close(out.logits.softmax(1), scores)
    torch.testing.assert_close(out.logits, F.linear(out.features, tap.weight, tap.bias))


# ------------------------------------------------------- adaptation touches the norm layers
@pytest.mark.parametrize('family', ['bn_resnet', 'gn_resnet', 'ln_vit'])
def test_tent_stag_changes_exactly_the_norm_affine_parameters(family):
    torch.manual_seed(0)
    model = _build(_tiny_cfg(
        family, type='TTAImageClassifier',
        tta_method=dict(type='Tent', regularizers=[dict(type='STAG')]),
        adapt_optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-2, momentum=0.9))))
    with torch.no_grad():  # BN statistics unlike the test data's, as after training elsewhere
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    # the intended set, from module types: weight and bias of every BN / GN / LN layer
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, NORM_TYPES)]
    expected = {f'{n}.{p}' for n, m in norms for p in ('weight', 'bias')}
    kinds = {type(m) for _, m in norms}
    assert kinds == {'bn_resnet': {nn.BatchNorm2d}, 'gn_resnet': {nn.GroupNorm},
                     'ln_vit': {nn.LayerNorm}}[family]
    params = dict(model.named_parameters())
    assert expected <= set(params)
    params_before = {k: v.detach().clone() for k, v in params.items()}
    buffers_before = {k: v.clone() for k, v in model.named_buffers()}
    for step in range(2):
        outputs = model.test_step(_batch(seed=step))
        assert len(outputs) == 6 and 'pred_score' in outputs[0]
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, params_before[k])}
    assert changed == expected
    for name, buf in model.named_buffers():  # BN running statistics, counters, ...
        assert torch.equal(buf, buffers_before[name]), name
    assert 0 < step_stats(outputs)['stag_multiplier'] < 1  # STAG's default weighting


@pytest.mark.parametrize('family, frozen', [
    ('bn_resnet', ['backbone.layer4']),
    ('ln_vit', ['backbone.layers.1', 'backbone.ln1']),
])
def test_sar_leaves_the_frozen_modules_alone(family, frozen):
    """SAR's classification reading: the top of the network is not adapted."""
    torch.manual_seed(0)
    model = _build(_tiny_cfg(
        family, type='TTAImageClassifier',
        tta_method=dict(type='SAR', frozen_modules=frozen, e0=10.0),
        adapt_optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-2, momentum=0.9))))
    model.eval()
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, NORM_TYPES)]
    inside = {f'{n}.{p}' for n, m in norms for p in ('weight', 'bias')
              if any(n == f or n.startswith(f + '.') for f in frozen)}
    assert inside
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    model.test_step(_batch())
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    expected = {f'{n}.{p}' for n, m in norms for p in ('weight', 'bias')} - inside
    assert changed == expected
    assert set(model.tta_method.param_names) == expected
    bad = _build(_tiny_cfg(
        family, type='TTAImageClassifier',
        tta_method=dict(type='SAR', frozen_modules=['backbone.layer9']),
        adapt_optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-2))))
    with pytest.raises(KeyError, match="no module 'backbone.layer9'"):
        bad.test_step(_batch())


# ------------------------------------------------------------------------------ the configs
def _parts(path: str) -> tuple[str, str, bool, bool]:
    """(model, method, stag, fisher) from the name ``{model}_{method}[_stag][_fisher].py``."""
    fields = osp.splitext(osp.basename(path))[0].split('_')
    return fields[0], fields[1], 'stag' in fields[2:], 'fisher' in fields[2:]


def test_every_model_has_every_method_with_and_without_stag():
    names = {osp.basename(p) for p in CONFIGS}
    for model in CHECKPOINT_NORM:
        methods = ['tent', 'eata', 'eata_fisher', 'sar', 'deyo', 'cotta']
        for method in methods:
            stag = method.replace('eata_fisher', 'eata_stag_fisher') if 'fisher' in method \
                else f'{method}_stag'
            assert {f'{model}_{method}.py', f'{model}_{stag}.py'} <= names
        assert f'{model}_source.py' in names
        # Norm (test-batch BN statistics) exists for the BatchNorm model only
        assert (f'{model}_norm.py' in names) == (model == 'resnet50')


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_each_imagenet_c_config_loads_with_its_method_and_stream(path):
    model, method, stag, fisher = _parts(path)
    cfg = Config.fromfile(path)
    tta = cfg.model.tta_method
    assert cfg.model.type == 'TTAImageClassifier' and cfg.default_scope == 'mmpretrain'
    expected_type = dict(source='Source', norm='Norm', tent='Tent', eata='EATA', sar='SAR',
                         deyo='DeYO', cotta='CoTTA', rdumb='RDumb', rotta='RoTTA', rmt='RMT',
                         roid='ROID')[method]
    assert tta.type == expected_type
    regs = tta.get('regularizers', [])
    if stag:
        assert [r['type'] for r in regs] == ['STAG']
        if method in ('cotta', 'rmt'):  # they train the classifier, so the anchors follow it
            assert regs[0] == dict(type='STAG', anchors='live')
        else:  # STAG with the defaults of _base_/tta/stag.py
            assert regs[0] == Config.fromfile(
                osp.join(ROOT, 'configs', '_base_', 'tta', 'stag.py')).stag
    else:
        assert not regs
    assert (tta.get('fisher_data') is not None) == fisher
    if fisher:
        assert tta.fisher_data.num_images == 2000
        assert tta.fisher_data.dataloader.dataset.data_root == 'data/imagenet'
    if method in ('tent', 'eata', 'sar', 'deyo'):
        optimizer = cfg.model.adapt_optim_wrapper.optimizer
        assert (optimizer.type, optimizer.lr, optimizer.momentum) == ('SGD', PUBLIC_LR[model],
                                                                      0.9)
    if method == 'cotta':  # the method brings its own optimizer (configs/_base_/tta/cotta-cls.py)
        assert tta.optim_wrapper.optimizer.lr == 0.01
    if method in REFERENCE_OPTIMIZERS:  # mariodoebler's cfgs/imagenet_c/<method>.yaml, every arch
        optimizer = cfg.model.adapt_optim_wrapper.optimizer
        assert (optimizer.type, optimizer.lr, optimizer.get('nesterov', False)) == \
            REFERENCE_OPTIMIZERS[method]
    if method == 'rdumb':
        assert (tta.reset_every, tta.d_margin, tta.e0) == (1000, 0.05, None)
    if method == 'rmt':  # the source-free variant of scripts/run.sh; prototypes need the source
        source_free = 'source-free' in path
        assert (tta.lambda_ce_src, tta.warmup_samples) == ((0.0, 0) if source_free
                                                           else (1.0, 50000))
        assert tta.source_data.dataloader.dataset.data_prefix == 'train'
        assert tta.get('attention_inputs', True) == (model != 'vit-b16')
    if method == 'deyo':  # DeYO's exp_deyo.sh: 0.3 in the mild (BN) setting, 0.2 otherwise
        assert tta.plpd_threshold == (0.3 if model == 'resnet50' else 0.2)
    # the stream: the 15 corruptions at severity 5 in the benchmark order, 5000 images, bs 64
    assert cfg.test_cfg.type == 'ContinualTestLoop' and cfg.test_cfg.rounds == 1
    assert list(cfg.test_cfg.domains) == list(CORRUPTIONS)
    assert (cfg.test_cfg.domain_key, cfg.test_cfg.metric_key) == ('corruption', 'accuracy/top1')
    dataset = cfg.test_dataloader.dataset
    assert (dataset.type, dataset.data_root, dataset.severity, dataset.num_images) == (
        'ImageNetCDataset', 'data/imagenet-c', 5, 5000)
    assert cfg.test_dataloader.batch_size == 64
    assert cfg.test_dataloader.sampler.shuffle  # ImageNet-C's files are sorted by class


@pytest.mark.parametrize('path', [p for p in CONFIGS if _parts(p)[2]], ids=osp.basename)
def test_a_stag_config_differs_from_its_plain_sibling_only_by_the_regularizer(path):
    plain = path.replace('_stag', '')
    with_stag, without = Config.fromfile(path).to_dict(), Config.fromfile(plain).to_dict()
    with_stag.pop('stag', None)  # the template of _base_/tta/stag.py
    assert with_stag['model']['tta_method'].pop('regularizers')
    assert without['model']['tta_method'].pop('regularizers') == []
    assert with_stag == without


@pytest.mark.parametrize('model_name', list(CHECKPOINT_NORM))
def test_each_imagenet_model_builds_with_its_checkpoints_normalisation(model_name):
    from mmpretrain.models.heads import LinearClsHead, VisionTransformerClsHead
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'imagenet_c', f'{model_name}_source.py'))
    model = _build(cfg.model)
    assert type(model).__name__ == 'TTAImageClassifier'
    tap = tap_cls_head(model)
    if model_name == 'vit-b16':
        assert isinstance(model.head, VisionTransformerClsHead)
        assert tap.layer is model.head.layers.head and tap.weight.shape == (1000, 768)
        assert model.backbone.pos_embed.shape == (1, 1 + 14 * 14, 768)  # 224 / 16 = 14
        assert {type(m) for m in model.modules() if isinstance(m, NORM_TYPES)} == {nn.LayerNorm}
    else:
        assert isinstance(model.head, LinearClsHead)
        assert tap.layer is model.head.fc and tap.weight.shape == (1000, 2048)
        norm = nn.GroupNorm if model_name == 'resnet50-gn' else nn.BatchNorm2d
        norms = [m for m in model.modules() if isinstance(m, NORM_TYPES)]
        assert {type(m) for m in norms} == {norm}
        if norm is nn.GroupNorm:
            assert {m.num_groups for m in norms} == {32}
    # the data preprocessor normalises as the checkpoint was trained (0-255 units, RGB)
    mean, std = CHECKPOINT_NORM[model_name]
    pre = model.data_preprocessor
    torch.testing.assert_close(pre.mean.flatten(), torch.tensor(mean) * 255)
    torch.testing.assert_close(pre.std.flatten(), torch.tensor(std) * 255)
    assert pre.to_rgb  # images are loaded BGR; the checkpoints take RGB
    if model_name == 'vit-b16':
        assert pre.mean.flatten().tolist() == [127.5] * 3
        assert pre.std.flatten().tolist() == [127.5] * 3
    crop = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'CenterCrop']
    assert crop[0]['crop_size'] == 224


# ------------------------------------------------------------------------- the converter
def _torchvision_resnet18(norm: str) -> nn.Module:
    from torchvision.models import resnet18
    torch.manual_seed(0)
    layer = (lambda c: nn.GroupNorm(32, c)) if norm == 'gn' else nn.BatchNorm2d
    model = resnet18(num_classes=NUM_CLS, norm_layer=layer)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, NORM_TYPES):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _mm_resnet18(norm: str) -> nn.Module:
    norm_cfg = dict(type='GN', num_groups=32) if norm == 'gn' else dict(type='BN')
    return _build(dict(type='ImageClassifier',
                       backbone=dict(type='ResNet', depth=18, out_indices=(3, ),
                                     norm_cfg=norm_cfg),
                       neck=dict(type='GlobalAveragePooling'),
                       head=dict(type='LinearClsHead', num_classes=NUM_CLS,
                                 in_channels=512))).eval()


@pytest.mark.parametrize('norm', ['bn', 'gn'])
def test_a_converted_resnet_computes_what_the_torchvision_model_computes(norm):
    source = _torchvision_resnet18(norm)
    converted = converter.convert(source.state_dict(),
                                  'resnet-gn' if norm == 'gn' else 'resnet')
    model = _mm_resnet18(norm)
    model.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.head(model.extract_feat(x)), source(x))


def _timm_vit_state(depth=2, dim=32, heads=2, hidden=64, patch=8, tokens=17) -> dict:
    """A random state dict with the keys and shapes of a timm VisionTransformer."""
    gen = torch.Generator().manual_seed(0)
    shapes = {'cls_token': (1, 1, dim), 'pos_embed': (1, tokens, dim),
              'patch_embed.proj.weight': (dim, 3, patch, patch), 'patch_embed.proj.bias': (dim, ),
              'norm.weight': (dim, ), 'norm.bias': (dim, ), 'head.weight': (NUM_CLS, dim),
              'head.bias': (NUM_CLS, )}
    for i in range(depth):
        shapes.update({f'blocks.{i}.norm1.weight': (dim, ), f'blocks.{i}.norm1.bias': (dim, ),
                       f'blocks.{i}.attn.qkv.weight': (3 * dim, dim),
                       f'blocks.{i}.attn.qkv.bias': (3 * dim, ),
                       f'blocks.{i}.attn.proj.weight': (dim, dim),
                       f'blocks.{i}.attn.proj.bias': (dim, ),
                       f'blocks.{i}.norm2.weight': (dim, ), f'blocks.{i}.norm2.bias': (dim, ),
                       f'blocks.{i}.mlp.fc1.weight': (hidden, dim),
                       f'blocks.{i}.mlp.fc1.bias': (hidden, ),
                       f'blocks.{i}.mlp.fc2.weight': (dim, hidden),
                       f'blocks.{i}.mlp.fc2.bias': (dim, )})
    state = {k: torch.randn(s, generator=gen) * 0.2 for k, s in shapes.items()}
    for k in state:
        if 'norm' in k and k.endswith('weight'):
            state[k] = 1 + state[k]
    return state


def _timm_vit_forward(state: dict, x: torch.Tensor, heads: int = 2, patch: int = 8) -> torch.Tensor:
    """timm's ViT equations, written out: patch embedding, class token, position embedding,
    pre-norm blocks (multi-head attention, GELU MLP), final LayerNorm (eps 1e-6), head on the
    class token."""
    def norm(t, name):
        return F.layer_norm(t, t.shape[-1:], state[f'{name}.weight'], state[f'{name}.bias'], 1e-6)

    def linear(t, name):
        return F.linear(t, state[f'{name}.weight'], state[f'{name}.bias'])

    x = F.conv2d(x, state['patch_embed.proj.weight'], state['patch_embed.proj.bias'],
                 stride=patch).flatten(2).transpose(1, 2)
    x = torch.cat([state['cls_token'].expand(len(x), -1, -1), x], dim=1) + state['pos_embed']
    num, tokens, dim = x.shape
    depth = len({k.split('.')[1] for k in state if k.startswith('blocks.')})
    for i in range(depth):
        qkv = linear(norm(x, f'blocks.{i}.norm1'), f'blocks.{i}.attn.qkv')
        q, k, v = qkv.reshape(num, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (dim // heads) ** -0.5).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(num, tokens, dim)
        x = x + linear(out, f'blocks.{i}.attn.proj')
        hidden = F.gelu(linear(norm(x, f'blocks.{i}.norm2'), f'blocks.{i}.mlp.fc1'))
        x = x + linear(hidden, f'blocks.{i}.mlp.fc2')
    return linear(norm(x, 'norm')[:, 0], 'head')


def test_a_converted_timm_vit_computes_the_timm_vit_equations():
    state = _timm_vit_state()
    model = _build(_tiny_cfg('ln_vit')).eval()
    model.load_state_dict(converter.convert(state, 'vit'), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.head(model.extract_feat(x)), _timm_vit_forward(state, x),
                                   rtol=1e-4, atol=1e-5)


def test_the_converter_refuses_keys_outside_the_stated_layout():
    state = _timm_vit_state()
    with pytest.raises(KeyError, match=r'blocks\.0\.ls1\.gamma'):
        converter.convert(dict(state, **{'blocks.0.ls1.gamma': torch.ones(32)}), 'vit')
    with pytest.raises(KeyError, match='use --arch resnet'):
        converter.convert(_torchvision_resnet18('bn').state_dict(), 'resnet-gn')
    with pytest.raises(KeyError, match='needs --arch resnet-gn'):
        converter.convert(_torchvision_resnet18('gn').state_dict(), 'resnet')
    with pytest.raises(ValueError, match="--arch must be one of"):
        converter.convert(state, 'swin')


def test_the_converter_tool_writes_a_checkpoint_that_loads_strictly(tmp_path):
    src, dst = str(tmp_path / 'resnet18_gn.pth'), str(tmp_path / 'converted.pth')
    state = _torchvision_resnet18('gn').state_dict()
    torch.save(state, src)
    check = tmp_path / 'check.py'
    check.write_text(f"model = {_tiny_check_model()!r}\n")
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'convert_timm_classifier.py'), src, dst,
         '--arch', 'resnet-gn', '--check-config', str(check)],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'converted {len(state)} tensors from {len(state)}' in proc.stdout
    assert 'loads strictly' in proc.stdout
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['layout'] == 'resnet-gn'
    assert saved['state_dict']['backbone.layer1.0.gn1.weight'].shape == (64, )


def _tiny_check_model() -> dict:
    return dict(type='TTAImageClassifier',
                backbone=dict(type='ResNet', depth=18, out_indices=(3, ),
                              norm_cfg=dict(type='GN', num_groups=32)),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=NUM_CLS, in_channels=512))
