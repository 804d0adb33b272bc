# ImageNet-C continual, ResNet-50-GN: Tent + STAG (feature space, lambda 1).
_base_ = ['./resnet50-gn_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
