# CIFAR-10-C continual, WRN-28-10: RMT with source replay and warm-up, its source images the
# CIFAR-10 training split (../_base_/tta/rmt_cifar10.py); Adam lr 1e-3, betas (0.9, 0.999), no
# weight decay, batch size 200, as mariodoebler/test-time-adaptation's cfgs/cifar10_c/rmt.yaml.
# The source-free variant: wrn-28-10_rmt_source-free.py.
_base_ = [
    './wrn-28-10_source.py', '../_base_/tta/rmt_cifar10.py',
    '../_base_/schedules/adam_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
