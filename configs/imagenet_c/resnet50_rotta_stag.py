# ImageNet-C continual, ResNet-50 (BN): RoTTA + STAG (its default reading, on the memory forward).
_base_ = ['./resnet50_rotta.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
