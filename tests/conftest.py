"""Shared builders: tiny MMSeg segmentors and batches made in the test, nothing downloaded."""
import os.path as osp

import pytest
import torch

import stag_seg  # noqa: F401  (registers the toolkit; installs the mmcv.ops fallback first)
from stag_seg.datasets.generators import write_synthetic_acdc

NUM_CLASSES = 4
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tiny_segmentor_cfg(tta_method=None, num_classes=NUM_CLASSES, optim_lr=1e-2, **kwargs):
    """A ~30k-parameter SegFormer (MiT + SegformerHead with BN) as a TTAEncoderDecoder."""
    cfg = dict(
        type='TTAEncoderDecoder',
        tta_method=tta_method or dict(type='Source'),
        adapt_optim_wrapper=dict(optimizer=dict(type='SGD', lr=optim_lr)),
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[120.0] * 3, std=[60.0] * 3,
                               bgr_to_rgb=False, pad_val=0, seg_pad_val=255),
        backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=8, num_stages=4,
                      num_layers=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], patch_sizes=[7, 3, 3, 3],
                      sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3), mlp_ratio=2,
                      drop_path_rate=0.0),
        decode_head=dict(type='SegformerHead', in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3],
                         channels=16, dropout_ratio=0.1, num_classes=num_classes,
                         norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    cfg.update(kwargs)
    return cfg


def build_segmentor(tta_method=None, seed=0, **kwargs):
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(tiny_segmentor_cfg(tta_method, **kwargs)))
    # non-trivial norm parameters and BN statistics, as a trained model would have
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    return model


def make_batch(num=2, size=(64, 64), seed=0, with_label=True):
    """A data batch as a dataloader with mmseg's pseudo_collate would give it."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(num):
        img = torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8)
        sample = SegDataSample(metainfo=dict(ori_shape=size, img_shape=size, pad_shape=size,
                                             img_path='synthetic.png'))
        if with_label:
            label = torch.randint(0, NUM_CLASSES, (1, *size), generator=g)
            sample.gt_sem_seg = PixelData(data=label)
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def state_copy(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope='session')
def tiny_tree(tmp_path_factory):
    """A tiny synthetic Cityscapes->ACDC tree: 3 images per condition at 64x32."""
    out = str(tmp_path_factory.mktemp('data') / 'synthetic_acdc')
    write_synthetic_acdc(out, num_source_train=2, num_source_val=1, num_target=3, width=64,
                         height=32, workers=1)
    return out
