# Cityscapes->ACDC with test-batch normalization statistics ("BN adapt").
_base_ = ['./segformer-b5_source.py', '../_base_/tta/norm.py']
model = dict(tta_method={{_base_.tta_method}})
