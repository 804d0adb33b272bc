# Cityscapes->ACDC with MMSeg's own SegFormer-B5 Cityscapes checkpoint, Tent as in the
# published table (pseudo-label cross entropy at 1080x1920, eval mode), Adam 7.5e-6.
_base_ = [
    './segformer-b5-mmseg_source.py', '../_base_/tta/tent-pl_cotta-seg.py',
    '../_base_/schedules/acdc_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
