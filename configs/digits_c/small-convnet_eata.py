# Digits-C with EATA (reliable, non-redundant samples, entropy weights), without the Fisher
# penalty (see small-convnet_eata_fisher.py).
_base_ = [
    './small-convnet_source.py', '../_base_/tta/eata.py', '../_base_/schedules/digits_sgd.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
