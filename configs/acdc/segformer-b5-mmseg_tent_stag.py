# Cityscapes->ACDC with MMSeg's own SegFormer-B5 Cityscapes checkpoint, Tent + STAG.
_base_ = ['./segformer-b5-mmseg_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
