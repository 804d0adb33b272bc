# ImageNet-C continual, ResNet-50 (BN): RoTTA (../_base_/tta/rotta.py: robust BatchNorm, a 64-sample
# category-balanced memory, a timeliness-weighted EMA teacher, an update every 64 samples); Adam
# lr 1e-3, batch size 64, as mariodoebler/test-time-adaptation's cfgs/imagenet_c/rotta.yaml.
_base_ = [
    './resnet50_source.py', '../_base_/tta/rotta.py', '../_base_/schedules/adam_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
