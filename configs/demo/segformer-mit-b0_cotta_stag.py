# The embedded benchmark with CoTTA + STAG (live anchors: CoTTA updates the classifier).
_base_ = ['./segformer-mit-b0_cotta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
