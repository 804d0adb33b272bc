# ImageNet-C continual, ViT-B/16: RDumb + STAG (its default reading).
_base_ = ['./vit-b16_rdumb.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
