# ImageNet-C continual, ViT-B/16: DeYO + STAG (feature space, lambda 1).
# Checkpoint: timm's vit_base_patch16_224.augreg_in21k_ft_in1k, converted (see
# vit-b16_source.py).
_base_ = ['./vit-b16_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
