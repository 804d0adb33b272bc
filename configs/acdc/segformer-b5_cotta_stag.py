# Cityscapes->ACDC with CoTTA + STAG (live anchors: CoTTA updates the classifier).
_base_ = ['./segformer-b5_cotta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
