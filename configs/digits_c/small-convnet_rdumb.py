# Digits-C with RDumb: EATA without the Fisher penalty, reset to the source every 1000 steps
# (../_base_/tta/rdumb.py), at the Digits-C optimizer of the other methods. The continual stream
# has 195 batches, so only the batch-1 setting (1500 steps) reaches a reset; there RDumb and
# EATA part ways, elsewhere RDumb is EATA without the Fisher penalty (small-convnet_eata.py).
_base_ = [
    './small-convnet_source.py', '../_base_/tta/rdumb.py', '../_base_/schedules/digits_sgd.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
