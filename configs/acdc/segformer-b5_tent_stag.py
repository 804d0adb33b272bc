# Cityscapes->ACDC with Tent + STAG in its default reading (configs/_base_/tta/stag.py).
_base_ = ['./segformer-b5_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
