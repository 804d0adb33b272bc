# ImageNet-C continual, ResNet-50-GN: EATA + STAG (its default reading), with the Fisher
# penalty of _eata_fisher.py.
_base_ = ['./resnet50-gn_eata_fisher.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
