# Digits-C with EATA (no Fisher penalty) + STAG (default reading: feature space, lambda 1).
_base_ = ['./small-convnet_eata.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
