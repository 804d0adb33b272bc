# Cityscapes->ACDC with DeYO + STAG.
# Checkpoint: NVlabs/CoTTA SegFormer-B5, converted by tools/convert_nvlabs_segformer.py.
_base_ = ['./segformer-b5_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
