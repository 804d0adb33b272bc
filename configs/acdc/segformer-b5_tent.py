# Cityscapes->ACDC with the TENT row of the published table (CoTTA, CVPR 2022): hard
# self-pseudo-label cross entropy on the norm layers, the model in eval mode, the loss at
# 1080x1920, Adam lr 7.5e-6 built anew for every domain visit (the stream's optimizer_reset).
_base_ = [
    './segformer-b5_source.py', '../_base_/tta/tent-pl_cotta-seg.py',
    '../_base_/schedules/acdc_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
