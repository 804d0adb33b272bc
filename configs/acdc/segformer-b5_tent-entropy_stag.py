# Cityscapes->ACDC with Tent (entropy) + STAG.
_base_ = ['./segformer-b5_tent-entropy.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
