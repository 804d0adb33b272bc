# The embedded benchmark with CoTTA (EMA teacher, 14-view labels, stochastic restore).
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/cotta.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
