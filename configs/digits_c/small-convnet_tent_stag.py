# Digits-C with Tent + STAG (its default reading).
_base_ = ['./small-convnet_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
