# ImageNet-C continual, ResNet-50 with GroupNorm: the source model, never adapted.
# The stream (configs/_base_/datasets/imagenet_c.py): the 15 corruptions at severity 5 in the
# usual order, 5000 images each (all 50000: --cfg-options
# test_dataloader.dataset.num_images=None), batch size 64, one round, read from data/imagenet-c.
# The checkpoint and how to convert it: README.md in this folder.
# There is no resnet50-gn_norm config: GroupNorm normalises each sample with its own statistics,
# so test-batch statistics ("Norm") change nothing; it would equal Source.
_base_ = [
    '../_base_/models/resnet50-gn_in1k_tta.py', '../_base_/datasets/imagenet_c.py',
    '../_base_/default_runtime_cls.py'
]
