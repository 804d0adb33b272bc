# ImageNet-C continual, ViT-B/16: ROID (../_base_/tta/roid.py); SGD lr 2.5e-4, Nesterov
# momentum 0.9, batch size 64, as mariodoebler/test-time-adaptation's cfgs/imagenet_c/roid.yaml.
# mariodoebler's repository runs the ViT with the ResNet-50 yaml (MODEL.ARCH swapped).
_base_ = [
    './vit-b16_source.py', '../_base_/tta/roid.py',
    '../_base_/schedules/imagenet-c_sgd-nesterov_lr2.5e-4.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
