# Cityscapes->ACDC with SVDP as the first run of its bash/svdp.sh (log/example_svdp_1.txt):
# 3 rounds, Adam 1e-4 fresh at every domain visit, 518 prompted pixels (sparse rate 0.001 of
# 540x960), prompt EMA scale 0.1, seed 42; the NVlabs SegFormer-B5 with the prompt on its
# backbone (backbone.prompt.patch, absent from the source checkpoint: random, as released).
_base_ = ['./segformer-b5_source.py', '../_base_/tta/svdp_original-views.py']
model = dict(
    backbone=dict(_delete_=True, type='SparsePromptedBackbone',
                  backbone={{_base_.model.backbone}},
                  prompt=dict(sparse_rate=0.001, input_size=(540, 960), seed=42)),
    tta_method={{_base_.tta_method}},
    adapt_optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999))))
test_dataloader = dict(dataset=dict(pipeline={{_base_.original_views_pipeline}}))
test_cfg = dict(rounds=3, optimizer_reset='domain')
randomness = dict(seed=42)
