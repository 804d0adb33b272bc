# Digits-C with EATA (no Fisher penalty) + STAG (its default reading).
_base_ = ['./small-convnet_eata.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
