# ImageNet-C continual, ViT-B/16: CoTTA + STAG, with live anchors (CoTTA updates the classifier).
# Checkpoint: timm's vit_base_patch16_224.augreg_in21k_ft_in1k, converted (see
# vit-b16_source.py).
_base_ = ['./vit-b16_cotta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
