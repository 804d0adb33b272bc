# ImageNet-C continual, ViT-B/16: RMT (source-free) + STAG with live anchors (RMT trains the
# classifier).
_base_ = ['./vit-b16_rmt_source-free.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
