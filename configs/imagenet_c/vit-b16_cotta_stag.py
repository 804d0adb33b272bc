# ImageNet-C continual, ViT-B/16: CoTTA + STAG, with live anchors (CoTTA updates the classifier).
_base_ = ['./vit-b16_cotta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
