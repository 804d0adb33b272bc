# The embedded benchmark with DAT (CoTTA's teacher, two masked losses, a few ranked tensors
# updated by a new Adam at every step, the rate halved every round), one tensor per ranking
# (../_base_/tta/dat_mit-b0.py).
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/dat_mit-b0.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
