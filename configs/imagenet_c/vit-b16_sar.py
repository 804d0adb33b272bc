# ImageNet-C continual, ViT-B/16: SAR (SAM with rho 0.05 on reliable entropy, e0 = 0.4 ln C,
# reset to the source below 0.2; blocks 9-11 and the final norm left alone, as in the
# reference); SGD lr 1e-3, momentum 0.9, batch size 64.
_base_ = [
    './vit-b16_source.py', '../_base_/tta/sar-cls_vit.py',
    '../_base_/schedules/imagenet-c_sgd_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
