# Digits-C with RMT + STAG, with live anchors (RMT trains the classifier).
_base_ = ['./small-convnet_rmt.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
