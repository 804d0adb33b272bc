# ImageNet-C continual, ViT-B/16: the source model, never adapted.
# The stream (configs/_base_/datasets/imagenet_c.py): the 15 corruptions at severity 5 in the
# usual order, 5000 images each (all 50000: --cfg-options
# test_dataloader.dataset.num_images=None), batch size 64, one round, read from data/imagenet-c.
# The checkpoint and how to convert it: README.md in this folder.
# Input normalised with mean = std = 127.5 (0.5 on [0, 1]), the checkpoint's own; the SAR and
# DeYO code feed this ViT ImageNet-normalised images instead (see
# configs/_base_/models/vit-b16_in1k_tta.py).
# There is no vit-b16_norm config: LayerNorm normalises each token with its own statistics, so
# test-batch statistics ("Norm") change nothing; it would equal Source.
_base_ = [
    '../_base_/models/vit-b16_in1k_tta.py', '../_base_/datasets/imagenet_c.py',
    '../_base_/default_runtime_cls.py'
]
