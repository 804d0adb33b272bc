# ImageNet-C continual, ResNet-50-GN: CoTTA + STAG, with live anchors (CoTTA updates the
# classifier).
_base_ = ['./resnet50-gn_cotta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
