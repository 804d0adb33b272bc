# Cityscapes->ACDC with SAR + STAG.
_base_ = ['./segformer-b5_sar.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
