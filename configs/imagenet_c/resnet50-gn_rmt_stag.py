# ImageNet-C continual, ResNet-50-GN: RMT + STAG with live anchors (RMT trains the
# classifier).
_base_ = ['./resnet50-gn_rmt.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
