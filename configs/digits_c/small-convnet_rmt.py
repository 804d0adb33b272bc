# Digits-C with RMT (../_base_/tta/rmt_digits.py: source replay, warm-up on 50000 source images,
# the contrastive term to source prototypes; the clean training digits as source images), at the
# Digits-C optimizer of the other methods.
_base_ = [
    './small-convnet_source.py', '../_base_/tta/rmt_digits.py',
    '../_base_/schedules/digits_sgd.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
