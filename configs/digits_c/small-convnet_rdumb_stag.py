# Digits-C with RDumb + STAG (its default reading).
_base_ = ['./small-convnet_rdumb.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
