# ImageNet-C continual, ViT-B/16: DeYO + STAG (its default reading).
_base_ = ['./vit-b16_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
