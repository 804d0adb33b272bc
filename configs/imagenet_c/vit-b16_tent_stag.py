# ImageNet-C continual, ViT-B/16: Tent + STAG (its default reading).
_base_ = ['./vit-b16_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
