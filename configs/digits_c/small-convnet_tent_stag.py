# Digits-C with Tent + STAG (default reading: feature space, lambda 1).
_base_ = ['./small-convnet_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
