# ImageNet-C continual, ResNet-50 (BN): RMT (source-free) + STAG with live anchors (RMT trains the
# classifier).
_base_ = ['./resnet50_rmt_source-free.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
