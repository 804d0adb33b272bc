# Digits-C with ROID (../_base_/tta/roid.py) at the Digits-C optimizer of the other methods. At
# batch size 1 its min-max normalisations are 0/0: every step is dropped as not finite there
# (the reference writes NaN into the model), and only the prior correction acts.
_base_ = [
    './small-convnet_source.py', '../_base_/tta/roid.py', '../_base_/schedules/digits_sgd.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
