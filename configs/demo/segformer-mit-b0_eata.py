# The embedded benchmark with EATA without its Fisher penalty (see _eata_fisher.py for the full
# method).
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/eata-seg.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
