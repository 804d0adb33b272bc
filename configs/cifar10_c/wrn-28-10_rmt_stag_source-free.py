# CIFAR-10-C continual, WRN-28-10: RMT (source-free) + STAG with live anchors (RMT trains the
# classifier).
_base_ = ['./wrn-28-10_rmt_source-free.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
