# ImageNet-C continual, ViT-B/16: Tent (entropy minimisation on the norm layers' affine
# parameters); SGD lr 1e-3, momentum 0.9, batch size 64.
_base_ = [
    './vit-b16_source.py', '../_base_/tta/tent.py',
    '../_base_/schedules/imagenet-c_sgd_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
