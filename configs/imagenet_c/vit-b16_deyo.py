# ImageNet-C continual, ViT-B/16: DeYO (4 x 4 patch shuffle; entropy < 0.5 ln C and PLPD > 0.2);
# blocks 9-11 and the final norm left alone, as in the reference; SGD lr 1e-3, momentum 0.9,
# batch size 64.
_base_ = [
    './vit-b16_source.py', '../_base_/tta/deyo-cls_vit.py',
    '../_base_/schedules/imagenet-c_sgd_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
