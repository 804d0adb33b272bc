# Cityscapes->ACDC with CoTTA + STAG (live anchors: CoTTA updates the classifier).
# Checkpoint: NVlabs/CoTTA SegFormer-B5, converted by tools/convert_nvlabs_segformer.py.
_base_ = ['./segformer-b5_cotta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
