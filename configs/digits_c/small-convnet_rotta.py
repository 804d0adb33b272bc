# Digits-C with RoTTA (../_base_/tta/rotta.py) and its own optimizer, Adam lr 1e-3 (the one of
# all its reference configs), at batch size 64: one update every 64 samples.
_base_ = [
    './small-convnet_source.py', '../_base_/tta/rotta.py', '../_base_/schedules/adam_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
