# ImageNet-C continual, ViT-B/16: ROID + STAG (its default reading, on ROID's weights and kept
# samples).
_base_ = ['./vit-b16_roid.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
