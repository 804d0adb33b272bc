# ImageNet-C continual, ResNet-50-GN: SAR (SAM with rho 0.05 on reliable entropy, e0 = 0.4 ln C,
# reset to the source below 0.2; layer4 left alone, as in the
# reference); SGD lr 2.5e-4, momentum 0.9, batch size 64.
_base_ = [
    './resnet50-gn_source.py', '../_base_/tta/sar-cls_resnet.py',
    '../_base_/schedules/imagenet-c_sgd_lr2.5e-4.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
