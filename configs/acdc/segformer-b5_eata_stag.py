# Cityscapes->ACDC with EATA + STAG.
_base_ = ['./segformer-b5_eata.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
