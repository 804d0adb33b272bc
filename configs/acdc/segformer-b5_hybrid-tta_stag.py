# Cityscapes->ACDC with Hybrid-TTA + STAG (its defaults, with live anchors: Hybrid-TTA updates
# the classifier, as CoTTA does). STAG is added to Hybrid-TTA's loss on every decoder position
# of the student's masked forward; in adapter tuning its gradient reaches what Hybrid-TTA
# trains then (all but the transformer blocks' own weights).
_base_ = ['./segformer-b5_hybrid-tta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
