# Digits-C with RoTTA + STAG (its default reading, on the memory forward).
_base_ = ['./small-convnet_rotta.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
