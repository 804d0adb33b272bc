# Cityscapes->ACDC (the CoTTA protocol), source model, no adaptation. Expects the NVlabs/CoTTA
# checkpoint segformer.b5.1024x1024.city.160k.pth converted by
#   python tools/convert_nvlabs_segformer.py segformer.b5.1024x1024.city.160k.pth CHECKPOINT
# (the model behind the published table; configs/acdc/segformer-b5-mmseg_*.py take MMSeg's own
# SegFormer-B5 Cityscapes checkpoint instead), then
#   python tools/test_tta.py configs/acdc/segformer-b5_source.py CHECKPOINT
_base_ = [
    '../_base_/models/segformer_mit-b5_nvlabs.py', '../_base_/datasets/acdc.py',
    '../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
