# CIFAR-10-C continual, WRN-28-10: RDumb (../_base_/tta/rdumb_cifar.py), EATA without the Fisher
# penalty, d_margin 0.4, reset to the source every 1000 steps; Adam lr 1e-3, betas (0.9, 0.999),
# no weight decay, batch size 200, as mariodoebler/test-time-adaptation's
# cfgs/cifar10_c/rdumb.yaml. The stream has 750 batches, so no reset comes within one round.
_base_ = [
    './wrn-28-10_source.py', '../_base_/tta/rdumb_cifar.py',
    '../_base_/schedules/adam_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
