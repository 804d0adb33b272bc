# CIFAR-10-C continual, WRN-28-10: ROID (../_base_/tta/roid.py); Adam lr 1e-3, betas (0.9, 0.999),
# no weight decay, batch size 200, as mariodoebler/test-time-adaptation's
# cfgs/cifar10_c/roid.yaml.
_base_ = ['./wrn-28-10_source.py', '../_base_/tta/roid.py', '../_base_/schedules/adam_lr1e-3.py']
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
