"""The key maps of timm / torchvision ImageNet classifiers and RobustBench CIFAR classifiers to
this toolkit's layouts.

``tools/convert_timm_classifier.py`` is their command line; see its docstring for the layouts.
"""
from __future__ import annotations

import re
import sys
from collections import OrderedDict

import torch

__all__ = ['ARCHS', 'BN_STATE', 'PARAM', 'VIT_BLOCK', 'VIT_TOP', 'convert', 'load_state']

ARCHS = ('vit', 'resnet', 'resnet-gn', 'robustbench-wrn', 'robustbench-resnext')

#: timm ViT block sub-keys and their mmpretrain names (``blocks.i.`` -> ``backbone.layers.i.``)
VIT_BLOCK = (('norm1.', 'ln1.'), ('attn.qkv.', 'attn.qkv.'), ('attn.proj.', 'attn.proj.'),
             ('norm2.', 'ln2.'), ('mlp.fc1.', 'ffn.layers.0.0.'), ('mlp.fc2.', 'ffn.layers.1.'))
VIT_TOP = {'cls_token': 'backbone.cls_token', 'pos_embed': 'backbone.pos_embed',
           'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
           'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
           'norm.weight': 'backbone.ln1.weight', 'norm.bias': 'backbone.ln1.bias',
           'head.weight': 'head.layers.head.weight', 'head.bias': 'head.layers.head.bias'}
PARAM = r'(weight|bias)'
BN_STATE = r'(weight|bias|running_mean|running_var|num_batches_tracked)'


def convert(state: dict[str, torch.Tensor], arch: str) -> OrderedDict:
    """Rename every tensor of a timm / torchvision / RobustBench state dict to mmpretrain's keys.

    The RobustBench ResNeXt's input normalisation (``mu``, ``sigma``) is dropped: the configs'
    data preprocessor does it, and it must be the released one (0.5, 0.5).

    Raises:
        ValueError: ``arch`` is not one of :data:`ARCHS`.
        KeyError: keys that do not belong to the stated layout (their names in the message).
    """
    if arch not in ARCHS:
        raise ValueError(f'--arch must be one of {ARCHS}, got {arch!r}')
    if arch == 'vit':
        rename = _vit_key
    elif arch.startswith('robustbench'):
        rename = _robustbench_key
        # saved from DataParallel: 'module.' before every key
        state = {k[len('module.'):] if k.startswith('module.') else k: v
                 for k, v in state.items()}
    else:
        rename = _resnet_key
    for name in ROBUSTBENCH_DROPPED if arch == 'robustbench-resnext' else ():
        if name in state and not torch.allclose(state[name].double().flatten(),
                                                torch.full((3, ), 0.5, dtype=torch.float64)):
            raise ValueError(f'{name} = {state[name].flatten().tolist()}: the configs normalise '
                             'the input with mean = std = 0.5 (127.5 in 0-255 units); set the '
                             "data preprocessor's mean/std to this checkpoint's instead")
    out: OrderedDict = OrderedDict()
    unknown = []
    for key, value in state.items():
        new = rename(key, arch)
        if new is None:
            unknown.append(key)
        elif new:  # '' marks a tensor the layout drops
            out[new] = value
    if unknown:
        hint = ''
        if arch == 'resnet-gn' and any(k.endswith('running_mean') for k in unknown):
            hint = ' (BatchNorm statistics: this is a BatchNorm ResNet, use --arch resnet)'
        elif arch == 'resnet' and not any(k.endswith('running_mean') for k in state):
            hint = ' (no BatchNorm statistics: a GroupNorm ResNet needs --arch resnet-gn)'
        raise KeyError(f'{len(unknown)} keys are not in the {arch} layout{hint}: '
                       f'{unknown[:10]}{" ..." if len(unknown) > 10 else ""}')
    if arch == 'resnet' and not any(k.endswith('running_mean') for k in state):
        raise KeyError('no BatchNorm statistics (bn1.running_mean, ...) in the checkpoint: a '
                       'GroupNorm ResNet needs --arch resnet-gn')
    return out


def _vit_key(key: str, arch: str) -> str | None:
    if key in VIT_TOP:
        return VIT_TOP[key]
    match = re.match(r'^blocks\.(\d+)\.(.+)$', key)
    if match:
        index, rest = match.groups()
        for old, new in VIT_BLOCK:
            if rest.startswith(old) and re.fullmatch(PARAM, rest[len(old):]):
                return f'backbone.layers.{index}.{new}{rest[len(old):]}'
    return None


def _resnet_key(key: str, arch: str) -> str | None:
    norm = 'gn' if arch == 'resnet-gn' else 'bn'
    state = PARAM if arch == 'resnet-gn' else BN_STATE
    if re.fullmatch(r'fc\.' + PARAM, key):
        return 'head.' + key
    if key == 'conv1.weight' or re.fullmatch(r'layer\d\.\d+\.(conv\d|downsample\.0)\.weight', key):
        return 'backbone.' + key
    match = re.fullmatch(r'(layer\d\.\d+\.)?bn(\d)\.' + state, key)
    if match:
        return f'backbone.{match.group(1) or ""}{norm}{match.group(2)}.{match.group(3)}'
    if re.fullmatch(r'layer\d\.\d+\.downsample\.1\.' + state, key):
        return 'backbone.' + key
    return None


#: The classifier of each RobustBench CIFAR model (``fc`` of the WRN, ``classifier`` of the
#: ResNeXt) and the input normalisation buffers that the data preprocessor replaces.
ROBUSTBENCH_HEAD = {'robustbench-wrn': 'fc', 'robustbench-resnext': 'classifier'}
ROBUSTBENCH_DROPPED = ('mu', 'sigma')


def _robustbench_key(key: str, arch: str) -> str | None:
    """``backbone.`` before the layers of :mod:`stag_seg.models.cifar_nets` (which keep the
    released names), ``head.fc.`` for the classifier; the ResNeXt's ``mu``/``sigma`` dropped."""
    head = ROBUSTBENCH_HEAD[arch]
    match = re.fullmatch(head + r'\.' + PARAM, key)
    if match:
        return f'head.fc.{match.group(1)}'
    if key in ROBUSTBENCH_DROPPED and arch == 'robustbench-resnext':
        return ''
    if arch == 'robustbench-wrn':
        layer = r'(conv1|block[123]\.layer\.\d+\.(conv[12]|convShortcut))\.weight|' \
                r'(block[123]\.layer\.\d+\.)?bn[12]\.' + BN_STATE
    else:
        layer = r'(conv_1_3x3|stage_[123]\.\d+\.(conv_reduce|conv_conv|conv_expand|' \
                r'downsample\.0))\.weight|(stage_[123]\.\d+\.)?(bn_1|bn_reduce|bn|' \
                r'bn_expand|downsample\.1)\.' + BN_STATE
    if re.fullmatch(layer, key):
        return 'backbone.' + key
    return None


def load_state(path: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (``.safetensors`` or a torch file, unwrapped if nested)."""
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError:
            sys.exit(f'{path}: reading .safetensors needs the safetensors package '
                     '(pip install safetensors), or save the model with torch.save first')
        return load_file(path)
    from .. import compat
    checkpoint = compat.load_checkpoint(path)
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint
