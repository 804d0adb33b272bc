# ImageNet-C continual, ResNet-50-GN: Tent (entropy minimisation on the norm layers' affine
# parameters); SGD lr 2.5e-4, momentum 0.9, batch size 64.
_base_ = [
    './resnet50-gn_source.py', '../_base_/tta/tent.py',
    '../_base_/schedules/imagenet-c_sgd_lr2.5e-4.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
