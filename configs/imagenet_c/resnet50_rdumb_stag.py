# ImageNet-C continual, ResNet-50 (BN): RDumb + STAG (its default reading).
_base_ = ['./resnet50_rdumb.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
