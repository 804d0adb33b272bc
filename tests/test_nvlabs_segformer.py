"""NVSegFormerHead and tools/convert_nvlabs_segformer.py against the NVlabs B5 layout."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

# SegFormer-B5 (NVlabs mix_transformer.py, mit_b5): stages, embedding dims, depths, SR ratios
DIMS, DEPTHS, SR, MLP_RATIO, EMBED, CLASSES = (64, 128, 320, 512), (3, 6, 40, 3), (8, 4, 2, 1), \
    4, 768, 19


def nvlabs_b5_state(seed=0):
    """A state dict with the real key names and shapes of segformer.b5.1024x1024.city.160k.pth."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    state, in_ch = {}, 3
    for s, (dim, depth, sr) in enumerate(zip(DIMS, DEPTHS, SR), start=1):
        k = 7 if s == 1 else 3
        state[f'backbone.patch_embed{s}.proj.weight'] = t(dim, in_ch, k, k)
        state[f'backbone.patch_embed{s}.proj.bias'] = t(dim)
        state[f'backbone.patch_embed{s}.norm.weight'] = 1 + t(dim)
        state[f'backbone.patch_embed{s}.norm.bias'] = t(dim)
        for i in range(depth):
            p = f'backbone.block{s}.{i}.'
            for norm in ('norm1', 'norm2'):
                state[p + f'{norm}.weight'], state[p + f'{norm}.bias'] = 1 + t(dim), t(dim)
            state[p + 'attn.q.weight'], state[p + 'attn.q.bias'] = t(dim, dim), t(dim)
            state[p + 'attn.kv.weight'], state[p + 'attn.kv.bias'] = t(2 * dim, dim), t(2 * dim)
            state[p + 'attn.proj.weight'], state[p + 'attn.proj.bias'] = t(dim, dim), t(dim)
            if sr > 1:
                state[p + 'attn.sr.weight'], state[p + 'attn.sr.bias'] = t(dim, dim, sr, sr), t(dim)
                state[p + 'attn.norm.weight'], state[p + 'attn.norm.bias'] = 1 + t(dim), t(dim)
            hidden = dim * MLP_RATIO
            state[p + 'mlp.fc1.weight'], state[p + 'mlp.fc1.bias'] = t(hidden, dim), t(hidden)
            state[p + 'mlp.dwconv.dwconv.weight'] = t(hidden, 1, 3, 3)
            state[p + 'mlp.dwconv.dwconv.bias'] = t(hidden)
            state[p + 'mlp.fc2.weight'], state[p + 'mlp.fc2.bias'] = t(dim, hidden), t(dim)
        state[f'backbone.norm{s}.weight'], state[f'backbone.norm{s}.bias'] = 1 + t(dim), t(dim)
        in_ch = dim
    for level, dim in zip((1, 2, 3, 4), DIMS):
        state[f'decode_head.linear_c{level}.proj.weight'] = t(EMBED, dim)
        state[f'decode_head.linear_c{level}.proj.bias'] = t(EMBED)
    state['decode_head.linear_fuse.conv.weight'] = t(EMBED, 4 * EMBED, 1, 1)
    state['decode_head.linear_fuse.bn.weight'] = 1 + t(EMBED)
    state['decode_head.linear_fuse.bn.bias'] = t(EMBED)
    state['decode_head.linear_fuse.bn.running_mean'] = t(EMBED)
    state['decode_head.linear_fuse.bn.running_var'] = 1 + t(EMBED).abs()
    state['decode_head.linear_fuse.bn.num_batches_tracked'] = torch.tensor(160000)
    state['decode_head.linear_pred.weight'] = t(CLASSES, EMBED, 1, 1)
    state['decode_head.linear_pred.bias'] = t(CLASSES)
    state['decode_head.conv_seg.weight'] = t(CLASSES, 128, 1, 1)  # built, never used
    state['decode_head.conv_seg.bias'] = t(CLASSES)
    return state


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('nv')
    src, dst = str(tmp / 'segformer.b5.1024x1024.city.160k.pth'), str(tmp / 'converted.pth')
    state = nvlabs_b5_state()
    torch.save(dict(state_dict=state, meta=dict(CLASSES=('road', ) * 19)), src)
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'convert_nvlabs_segformer.py'),
                           src, dst, '--check-config',
                           osp.join(ROOT, 'configs', '_base_', 'models',
                                    'segformer_mit-b5_nvlabs.py')],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return state, torch.load(dst, weights_only=True)['state_dict'], proc.stdout


def test_the_converter_counts_and_loads_strictly(converted):
    state, new, stdout = converted
    kv = sum(1 for k in state if '.attn.kv.' in k)
    assert len(new) == len(state) - kv - 2  # kv joined into in_proj, unused conv_seg dropped
    assert f'converted {len(new)} tensors from {len(state)}' in stdout
    assert 'loads strictly into the model' in stdout
    q = state['backbone.block3.7.attn.q.weight']
    kvw = state['backbone.block3.7.attn.kv.weight']
    torch.testing.assert_close(new['backbone.layers.2.1.7.attn.attn.in_proj_weight'],
                               torch.cat([q, kvw]))
    torch.testing.assert_close(new['backbone.layers.0.1.2.ffn.layers.0.weight'][..., 0, 0],
                               state['backbone.block1.2.mlp.fc1.weight'])
    torch.testing.assert_close(new['decode_head.conv_seg.weight'],
                               state['decode_head.linear_pred.weight'])


def _nvlabs_head(state, feats):
    """The NVlabs SegFormerHead equations, written out on the release's tensors (eval mode)."""
    def proj(level, x):
        n, _, h, w = x.shape
        w_, b_ = state[f'decode_head.linear_c{level}.proj.weight'], \
            state[f'decode_head.linear_c{level}.proj.bias']
        y = x.flatten(2).transpose(1, 2) @ w_.t() + b_
        return y.transpose(1, 2).reshape(n, -1, h, w)

    c1, c2, c3, c4 = feats
    size = c1.shape[2:]
    up = [F.interpolate(proj(i, c), size=size, mode='bilinear', align_corners=False)
          for i, c in ((4, c4), (3, c3), (2, c2))]
    x = torch.cat([*up, proj(1, c1)], dim=1)
    x = F.conv2d(x, state['decode_head.linear_fuse.conv.weight'])
    x = F.batch_norm(x, state['decode_head.linear_fuse.bn.running_mean'],
                     state['decode_head.linear_fuse.bn.running_var'],
                     state['decode_head.linear_fuse.bn.weight'],
                     state['decode_head.linear_fuse.bn.bias'], training=False, eps=1e-5)
    x = F.relu(x)
    return F.conv2d(x, state['decode_head.linear_pred.weight'],
                    state['decode_head.linear_pred.bias'])


def test_the_converted_head_computes_the_nvlabs_head_equations(converted):
    import stag_seg  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    state, new, _ = converted
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'models',
                                   'segformer_mit-b5_nvlabs.py')).model.decode_head
    cfg.norm_cfg = dict(type='BN', requires_grad=True)
    with DefaultScope.overwrite_default_scope('mmseg'):
        head = MODELS.build(cfg)
    head.load_state_dict({k[len('decode_head.'):]: v for k, v in new.items()
                          if k.startswith('decode_head.')}, strict=True)
    head.eval()
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(2, dim, 16 // 2**i, 24 // 2**i, generator=g)
             for i, dim in enumerate(DIMS)]
    with torch.no_grad():
        ours = head.forward(feats)
        expected = _nvlabs_head(state, feats)
    assert ours.shape == (2, CLASSES, 16, 24)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_unknown_keys_stop_the_conversion_with_their_names():
    from stag_seg.models import nvlabs_checkpoint as conv
    state = {'backbone.patch_embed1.proj.weight': torch.zeros(1),
             'auxiliary_head.conv.weight': torch.zeros(1),
             'decode_head.linear_c5.proj.weight': torch.zeros(1)}
    with pytest.raises(KeyError, match=r"2 keys are not in the NVlabs SegFormer layout: "
                                        r"\['auxiliary_head.conv.weight', 'decode_head"):
        conv.convert(state)
    with pytest.raises(KeyError, match='attn.kv.weight is missing'):
        conv.convert({'backbone.block1.0.attn.q.weight': torch.zeros(2, 2)})
