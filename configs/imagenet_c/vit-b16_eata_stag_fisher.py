# ImageNet-C continual, ViT-B/16: EATA + STAG (its default reading), with the Fisher penalty
# of _eata_fisher.py.
_base_ = ['./vit-b16_eata_fisher.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
