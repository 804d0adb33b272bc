# Cityscapes->ACDC with Hybrid-TTA's --aug-test variant + STAG (live anchors).
_base_ = ['./segformer-b5_hybrid-tta_aug-test.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
