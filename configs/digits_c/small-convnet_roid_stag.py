# Digits-C with ROID + STAG (its default reading).
_base_ = ['./small-convnet_roid.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
