# CIFAR-100-C continual, ResNeXt-29: RoTTA (../_base_/tta/rotta.py: robust BatchNorm, a 64-sample
# category-balanced memory, a timeliness-weighted EMA teacher, an update every 64 samples); Adam
# lr 1e-3, betas (0.9, 0.999), no weight decay, batch size 200, as
# mariodoebler/test-time-adaptation's cfgs/cifar100_c/rotta.yaml.
_base_ = ['./resnext-29_source.py', '../_base_/tta/rotta.py', '../_base_/schedules/adam_lr1e-3.py']
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
