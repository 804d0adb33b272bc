# Cityscapes->ACDC with tent-pl + STAG.
_base_ = ['./segformer-b5_tent-pl.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
