# Digits-C with EATA + Fisher + STAG (its default reading).
_base_ = ['./small-convnet_eata_fisher.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
