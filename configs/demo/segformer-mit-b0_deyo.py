# The embedded benchmark with DeYO (patch-shuffled view, entropy and per-pixel PLPD selection).
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/deyo.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
