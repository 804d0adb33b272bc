# ImageNet-C continual, ResNet-50-GN: Tent + STAG (its default reading).
_base_ = ['./resnet50-gn_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
