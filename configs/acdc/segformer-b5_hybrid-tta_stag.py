# Cityscapes->ACDC with Hybrid-TTA + STAG (its defaults, with live anchors: Hybrid-TTA updates
# the classifier, as CoTTA does). STAG weights each pixel's cross entropy of the student's
# masked forward by its alignment (the reconstruction term keeps its weight).
_base_ = ['./segformer-b5_hybrid-tta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
