# ImageNet-C continual, ResNet-50 (BN): ROID + STAG (its default reading, on ROID's weights and kept
# samples).
_base_ = ['./resnet50_roid.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
