# ImageNet-C continual, ResNet-50 with GroupNorm: the source model, never adapted.
# The stream (configs/_base_/datasets/imagenet_c.py): the 15 corruptions at severity 5 in the
# usual order, 5000 images each (all 50000: --cfg-options
# test_dataloader.dataset.num_images=None), batch size 64, one round, read from data/imagenet-c.
# Checkpoint: timm's resnet50_gn (resnet50_gn_a1h2-8fe6c4d0.pth, SAR's and DeYO's ResNet50-GN),
# converted (timm names the GroupNorm layers bn*, mmpretrain gn*):
#  python tools/convert_timm_classifier.py resnet50_gn_a1h2-8fe6c4d0.pth CHECKPOINT --arch resnet-gn
#  python tools/test_tta.py configs/imagenet_c/resnet50-gn_source.py CHECKPOINT
# There is no resnet50-gn_norm config: GroupNorm normalises each sample with its own statistics,
# so test-batch statistics ("Norm") change nothing; it would equal Source.
_base_ = [
    '../_base_/models/resnet50-gn_in1k_tta.py', '../_base_/datasets/imagenet_c.py',
    '../_base_/default_runtime_cls.py'
]
