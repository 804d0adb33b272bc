# The embedded benchmark with Tent (entropy) on the norm layers.
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/tent.py', '../_base_/schedules/demo_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
