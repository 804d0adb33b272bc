# ImageNet-C continual, ViT-B/16: EATA without its Fisher penalty (entropy minimisation on
# reliable, non-redundant samples, e0 = 0.4 ln C, d_margin 0.05; the full method is
# _eata_fisher.py); SGD lr 1e-3, momentum 0.9, batch size 64.
_base_ = [
    './vit-b16_source.py', '../_base_/tta/eata.py',
    '../_base_/schedules/imagenet-c_sgd_lr1e-3.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
