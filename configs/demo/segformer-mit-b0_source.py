# The embedded benchmark (synthetic Cityscapes->ACDC, 4 conditions x 3 rounds, batch size 1)
# with the source model, never adapted. The checkpoint is committed (tools/train_source.py).
_base_ = [
    '../_base_/models/segformer_mit-b0.py', '../_base_/datasets/synthetic_acdc.py',
    '../_base_/default_runtime.py'
]
load_from = 'checkpoints/segformer-mit-b0_synthetic-cityscapes.pth'
