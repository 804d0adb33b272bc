"""The key maps of NVlabs SegFormer segmentation checkpoints to this toolkit's layouts.

``tools/convert_nvlabs_segformer.py`` is their command line; see its docstring for the layouts.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import torch

__all__ = ['BLOCK_RENAMES', 'HEAD_KEYS', 'UNUSED', 'convert']

#: NVlabs MiT block sub-keys and where they go in MMSeg 1.x (``attn.q``/``attn.kv`` are joined)
BLOCK_RENAMES = (
    ('norm1.', 'norm1.'), ('norm2.', 'norm2.'), ('attn.proj.', 'attn.attn.out_proj.'),
    ('attn.sr.', 'attn.sr.'), ('attn.norm.', 'attn.norm.'), ('mlp.fc1.', 'ffn.layers.0.'),
    ('mlp.dwconv.dwconv.', 'ffn.layers.1.'), ('mlp.fc2.', 'ffn.layers.4.'),
)
HEAD_KEYS = re.compile(r'^decode_head\.(linear_c[1-4]\.proj|linear_fuse\.(conv|bn)|linear_pred)'
                       r'\.(weight|bias|running_mean|running_var|num_batches_tracked)$')
#: In the release, BaseDecodeHead builds a conv_seg that its SegFormerHead never uses.
UNUSED = re.compile(r'^decode_head\.conv_seg\.(weight|bias)$')


def convert(state: dict[str, torch.Tensor]) -> tuple[OrderedDict, list[str]]:
    """Rename (and join, reshape) every tensor; returns the new state and the dropped keys.

    Raises:
        KeyError: keys that belong to neither layout, or a ``q`` without its ``kv``.
    """
    out: OrderedDict = OrderedDict()
    dropped, unknown = [], []
    for key, value in state.items():
        if UNUSED.match(key):
            dropped.append(key)
        elif key.startswith('decode_head.'):
            if not HEAD_KEYS.match(key):
                unknown.append(key)
            elif key.startswith('decode_head.linear_pred.'):
                out[key.replace('linear_pred', 'conv_seg')] = value
            else:
                out[key] = value
        elif key.startswith('backbone.'):
            new = _backbone_key(key[len('backbone.'):], value, state)
            if new is None:
                continue  # attn.kv: joined into in_proj with its attn.q
            if new is False:
                unknown.append(key)
            else:
                out['backbone.' + new[0]] = new[1]
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'{len(unknown)} keys are not in the NVlabs SegFormer layout: '
                       f'{unknown[:10]}{" ..." if len(unknown) > 10 else ""}')
    return out, dropped


def _backbone_key(key: str, value: torch.Tensor, state: dict):
    """(new key, new value); None for a key merged elsewhere; False for an unknown key."""
    match = re.match(r'^patch_embed(\d)\.(proj|norm)\.(weight|bias)$', key)
    if match:
        stage, part, kind = match.groups()
        part = 'projection' if part == 'proj' else 'norm'
        return f'layers.{int(stage) - 1}.0.{part}.{kind}', value
    match = re.match(r'^norm(\d)\.(weight|bias)$', key)
    if match:
        return f'layers.{int(match.group(1)) - 1}.2.{match.group(2)}', value
    match = re.match(r'^block(\d)\.(\d+)\.(.+)$', key)
    if not match:
        return False
    stage, index, rest = match.groups()
    prefix = f'layers.{int(stage) - 1}.1.{index}.'
    if rest.startswith('attn.kv.'):
        return None
    if rest.startswith('attn.q.'):
        kind = rest[len('attn.q.'):]
        kv_key = f'backbone.block{stage}.{index}.attn.kv.{kind}'
        if kv_key not in state:
            raise KeyError(f'{kv_key} is missing: attention needs q and kv')
        return prefix + f'attn.attn.in_proj_{kind}', torch.cat([value, state[kv_key]], dim=0)
    for old, new in BLOCK_RENAMES:
        if rest.startswith(old):
            if old in ('mlp.fc1.', 'mlp.fc2.') and rest.endswith('weight'):
                value = value.reshape(*value.shape, 1, 1)  # Linear -> 1x1 conv
            return prefix + new + rest[len(old):], value
    return False
