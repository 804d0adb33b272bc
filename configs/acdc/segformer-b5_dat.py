# Cityscapes->ACDC with DAT as its published run (acdc.log of RochelleNi/DAT): 3 rounds, Adam
# 2.5e-4 in round 1, halved every round (1.25e-4, 6.25e-5), a new Adam at every step over the
# selected tensors; 14 views made from the original image, each through slide inference.
_base_ = ['./segformer-b5_source.py', '../_base_/tta/dat_original-views.py']
model = dict(
    tta_method={{_base_.tta_method}},
    adapt_optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=2.5e-4, betas=(0.9, 0.999))))
test_dataloader = dict(dataset=dict(pipeline={{_base_.original_views_pipeline}}))
test_cfg = dict(rounds=3)
