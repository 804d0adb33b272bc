"""Convert a timm / torchvision ImageNet or RobustBench CIFAR classifier to mmpretrain's layout.

    python tools/convert_timm_classifier.py SRC DST
        --arch {vit,resnet,resnet-gn,robustbench-wrn,robustbench-resnext}
                                            [--check-config CONFIG] [--unsafe-load]

SRC is a plain state dict (``.pth`` / ``.bin``, or ``.safetensors`` with the safetensors
package), as ``torch.save(timm_model.state_dict(), SRC)`` writes it or as the Hugging Face
``timm/<model>`` repositories and torchvision's model zoo ship it. The layout is stated, not
guessed:

- ``vit``: a plain timm ``VisionTransformer`` (class token, final norm, one linear head; no
  layer scale, no pre-logits layer), e.g. ``vit_base_patch16_224.augreg_in21k_ft_in1k``, to
  mmpretrain's ``VisionTransformer`` + ``VisionTransformerClsHead``
  (``configs/_base_/models/vit-b16_in1k_tta.py``);
- ``resnet``: torchvision's ``resnet*`` or timm's BatchNorm ResNets (the same keys), to
  mmpretrain's ``ResNet`` + ``LinearClsHead`` (``configs/_base_/models/resnet50_in1k_tta.py``);
- ``resnet-gn``: timm's GroupNorm ResNets (``resnet50_gn``), whose norm layers timm calls
  ``bn*`` and mmpretrain ``gn*`` (``configs/_base_/models/resnet50-gn_in1k_tta.py``);
- ``robustbench-wrn``: RobustBench's CIFAR-10 ``Standard`` WRN-28-10 (``Standard.pt``), to
  ``CifarWideResNet`` + ``LinearClsHead`` (``configs/_base_/models/wrn-28-10_cifar10_tta.py``);
- ``robustbench-resnext``: RobustBench's CIFAR-100 ``Hendrycks2020AugMix_ResNeXt``
  (``Hendrycks2020AugMix_ResNeXt.pt``), to ``CifarResNeXt`` + ``LinearClsHead``
  (``configs/_base_/models/resnext-29_cifar100_tta.py``); its ``mu``/``sigma`` input buffers
  are dropped (the config's data preprocessor normalises).

Unknown or missing keys stop the conversion with their names; the count of converted tensors
is printed. ``--check-config`` builds the config's model and loads DST into it strictly.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

import torch

from stag_seg import compat
from stag_seg.models.timm_checkpoint import ARCHS, convert, load_state


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='timm / torchvision / RobustBench classifier -> mmpretrain')
    parser.add_argument('src', help='state dict of the timm, torchvision or RobustBench model')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--arch', required=True, choices=ARCHS, help='the layout of SRC')
    parser.add_argument('--check-config',
                        help='build this config\'s model and load DST into it strictly')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='load SRC as a full pickle (it can run code): only trusted files')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.unsafe_load:
        compat.enable_full_pickle_loading()
    state = load_state(args.src)
    converted = convert(state, args.arch)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=converted,
                    meta=dict(converted_from=osp.basename(args.src), layout=args.arch)),
               args.dst)
    print(f'converted {len(converted)} tensors from {len(state)} -> {args.dst}')
    if args.check_config:
        import stag_seg  # noqa: F401  (registers TTAImageClassifier)
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmpretrain.registry import MODELS
        cfg = Config.fromfile(args.check_config)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(cfg.model)
        model.load_state_dict(converted, strict=True)
        print(f'{args.dst} loads strictly into the model of {args.check_config}')


if __name__ == '__main__':
    main()
