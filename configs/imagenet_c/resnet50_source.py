# ImageNet-C continual, ResNet-50 (BatchNorm): the source model, never adapted.
# The stream (configs/_base_/datasets/imagenet_c.py): the 15 corruptions at severity 5 in the
# usual order, 5000 images each (all 50000: --cfg-options
# test_dataloader.dataset.num_images=None), batch size 64, one round, read from data/imagenet-c.
# Checkpoint: mmpretrain's resnet50_8xb32_in1k layout, e.g. mmpretrain's own
#  https://download.openmmlab.com/mmclassification/v0/resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth
# or the model of the published ImageNet-C tables (Tent, EATA, SAR, DeYO; RobustBench's
# Standard_R50 for CoTTA), torchvision's resnet50 IMAGENET1K_V1 (resnet50-19c8e357.pth),
# converted with
#  python tools/convert_timm_classifier.py resnet50-19c8e357.pth CHECKPOINT --arch resnet
# then
#  python tools/test_tta.py configs/imagenet_c/resnet50_source.py CHECKPOINT
_base_ = [
    '../_base_/models/resnet50_in1k_tta.py', '../_base_/datasets/imagenet_c.py',
    '../_base_/default_runtime_cls.py'
]
