# ImageNet-C continual, ResNet-50-GN: DeYO + STAG (its default reading).
_base_ = ['./resnet50-gn_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
