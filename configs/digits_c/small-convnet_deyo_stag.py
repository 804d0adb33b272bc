# Digits-C with DeYO + STAG (its default reading).
_base_ = ['./small-convnet_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
