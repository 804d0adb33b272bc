# ImageNet-C continual, ViT-B/16: EATA with its Fisher penalty (alpha 2000), estimated on 2000
# clean ImageNet validation images (data/imagenet/val;
# configs/_base_/datasets/imagenet_fisher.py).
# Checkpoint: timm's vit_base_patch16_224.augreg_in21k_ft_in1k, converted (see
# vit-b16_source.py).
_base_ = ['./vit-b16_eata.py', '../_base_/datasets/imagenet_fisher.py']
model = dict(tta_method=dict(fisher_data={{_base_.fisher_data}}))
