# CIFAR-100-C continual, ResNeXt-29: RMT + STAG with live anchors (RMT trains the classifier).
_base_ = ['./resnext-29_rmt.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
