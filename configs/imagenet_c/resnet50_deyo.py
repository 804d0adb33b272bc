# ImageNet-C continual, ResNet-50 (BN): DeYO (4 x 4 patch shuffle; entropy < 0.5 ln C and
# PLPD > 0.3; layer4 left alone, as in the reference); SGD lr 2.5e-4, momentum 0.9, batch size 64.
_base_ = [
    './resnet50_source.py', '../_base_/tta/deyo-cls_resnet_plpd0.3.py',
    '../_base_/schedules/imagenet-c_sgd_lr2.5e-4.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
