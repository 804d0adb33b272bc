# Cityscapes->ACDC (the CoTTA protocol), source model, no adaptation; the checkpoint and how to
# convert it: README.md in this folder.
_base_ = [
    '../_base_/models/segformer_mit-b5_nvlabs.py', '../_base_/datasets/acdc.py',
    '../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
