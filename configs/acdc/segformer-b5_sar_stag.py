# Cityscapes->ACDC with SAR + STAG.
# Checkpoint: NVlabs/CoTTA SegFormer-B5, converted by tools/convert_nvlabs_segformer.py.
_base_ = ['./segformer-b5_sar.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
