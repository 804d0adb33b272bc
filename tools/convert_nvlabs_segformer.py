"""Convert an NVlabs SegFormer segmentation checkpoint to this toolkit's layout.

    python tools/convert_nvlabs_segformer.py SRC DST [--check-config CONFIG] [--unsafe-load]

SRC is a checkpoint of the NVlabs SegFormer release (or of the CoTTA release, which uses it),
e.g. ``segformer.b5.1024x1024.city.160k.pth``: an mmseg 0.x model with ``backbone.*`` in the
NVlabs MiT layout and ``decode_head.*`` in the NVlabs head layout. DST is written with MMSeg
1.x's ``MixVisionTransformer`` keys and this toolkit's ``NVSegFormerHead`` keys, loadable with
``configs/_base_/models/segformer_mit-b5_nvlabs.py``. Unknown or missing keys stop the
conversion with their names; the count of converted tensors is printed.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

import torch

from stag_seg import compat
from stag_seg.models.nvlabs_checkpoint import convert


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='NVlabs SegFormer -> stag_seg layout')
    parser.add_argument('src', help='NVlabs / CoTTA SegFormer checkpoint')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--check-config',
                        help='build this config\'s model and load DST into it strictly')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='load SRC as a full pickle (it can run code): only trusted files')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.unsafe_load:
        compat.enable_full_pickle_loading()
    checkpoint = compat.load_checkpoint(args.src)
    state = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    converted, dropped = convert(state)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=converted,
                    meta=dict(converted_from=osp.basename(args.src), layout='NVSegFormerHead')),
               args.dst)
    print(f'converted {len(converted)} tensors from {len(state)} ({len(dropped)} unused dropped: '
          f'{", ".join(dropped) or "none"}) -> {args.dst}')
    if args.check_config:
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmseg.registry import MODELS
        cfg = Config.fromfile(args.check_config)
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(cfg.model)
        model.load_state_dict(converted, strict=True)
        print(f'{args.dst} loads strictly into the model of {args.check_config}')


if __name__ == '__main__':
    main()
