# Cityscapes->ACDC with DeYO + STAG.
_base_ = ['./segformer-b5_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
