# Cityscapes->ACDC with MMSeg's own SegFormer-B5 Cityscapes checkpoint, Tent + STAG.
# Checkpoint: MMSeg 1.x SegFormer-B5 layout (MMSeg's own Cityscapes checkpoint).
_base_ = ['./segformer-b5-mmseg_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
