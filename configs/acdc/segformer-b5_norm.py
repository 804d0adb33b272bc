# Cityscapes->ACDC with test-batch normalization statistics ("BN adapt").
# Checkpoint: NVlabs/CoTTA SegFormer-B5, converted by tools/convert_nvlabs_segformer.py.
_base_ = ['./segformer-b5_source.py', '../_base_/tta/norm.py']
model = dict(tta_method={{_base_.tta_method}})
