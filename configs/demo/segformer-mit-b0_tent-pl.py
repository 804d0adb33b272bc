# The embedded benchmark with Tent on hard self-pseudo-labels (the "TENT" of the public CoTTA
# segmentation code).
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/tent-pl.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
