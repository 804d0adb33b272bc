# Digits-C with SAR (reliable entropy, SAM, reset to the source on collapse).
_base_ = [
    './small-convnet_source.py', '../_base_/tta/sar.py', '../_base_/schedules/digits_sgd.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
# at batch size 1 the learning rate is doubled once more, as SAR's main.py does
lr_scaling = dict(at_1=2.0)
