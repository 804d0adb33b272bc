# The embedded benchmark with SAR (SAM, reliable entropy, reset to the source on collapse).
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/sar.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
