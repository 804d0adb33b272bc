# Digits-C with Tent (entropy minimisation on the GroupNorm affine parameters).
_base_ = [
    './small-convnet_source.py', '../_base_/tta/tent.py', '../_base_/schedules/digits_sgd.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
