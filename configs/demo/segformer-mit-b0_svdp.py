# The embedded benchmark with SVDP (CoTTA with sparse prompts at the teacher's MC-dropout
# uncertain pixels; the prompt on the backbone, 32 pixels: sparse rate 0.001 of 128x256), Adam
# fresh at every domain visit, as the reference.
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/svdp.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(
    backbone=dict(_delete_=True, type='SparsePromptedBackbone',
                  backbone={{_base_.model.backbone}},
                  prompt=dict(sparse_rate=0.001, input_size=(128, 256), seed=42)),
    tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
test_cfg = dict(optimizer_reset='domain')
