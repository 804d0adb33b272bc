# Cityscapes->ACDC with CoTTA as its published table ran it (EMA teacher; 14 views made from the
# original image, each through slide inference, averaged at 1080x1920 where the source is
# unsure; stochastic restore); Adam 7.5e-6, fresh at every domain visit.
_base_ = [
    './segformer-b5_source.py', '../_base_/tta/cotta_original-views.py',
    '../_base_/schedules/acdc_adam.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
test_dataloader = dict(dataset=dict(pipeline={{_base_.original_views_pipeline}}))
