# ImageNet-C continual, ResNet-50-GN: RDumb + STAG (its default reading).
_base_ = ['./resnet50-gn_rdumb.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
