# Cityscapes->ACDC with Tent + STAG (feature space, Gram form, frozen anchors, lambda 1).
_base_ = ['./segformer-b5_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
