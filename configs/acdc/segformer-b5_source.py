# Cityscapes->ACDC, source model (no adaptation). Expects a checkpoint in MMSeg 1.x's SegFormer
# layout (MMSeg's own SegFormer-B5 Cityscapes 1024x1024 checkpoint, stock SegformerHead):
#   python tools/test_tta.py configs/acdc/segformer-b5_source.py CHECKPOINT
_base_ = [
    '../_base_/models/segformer_mit-b5.py', '../_base_/datasets/acdc.py',
    '../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
