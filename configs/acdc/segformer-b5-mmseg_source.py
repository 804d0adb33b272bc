# Cityscapes->ACDC with MMSeg's own SegFormer-B5 Cityscapes checkpoint (stock SegformerHead,
# segformer_mit-b5_8xb1-160k_cityscapes-1024x1024), source model.
_base_ = [
    '../_base_/models/segformer_mit-b5.py', '../_base_/datasets/acdc.py',
    '../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
