# ImageNet-C continual, ResNet-50 (BN): DeYO + STAG (its default reading).
_base_ = ['./resnet50_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
