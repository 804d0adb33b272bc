# ImageNet-C continual, ViT-B/16: RMT + STAG with live anchors (RMT trains the
# classifier).
_base_ = ['./vit-b16_rmt.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
