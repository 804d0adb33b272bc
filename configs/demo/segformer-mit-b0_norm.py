# The embedded benchmark with test-batch normalization statistics ("BN adapt").
_base_ = ['./segformer-mit-b0_source.py', '../_base_/tta/norm.py']
model = dict(tta_method={{_base_.tta_method}})
