# ImageNet-C continual, ViT-B/16: RoTTA + STAG (its default reading, on the memory forward).
_base_ = ['./vit-b16_rotta.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
