# The embedded benchmark with SVDP + STAG (live anchors: SVDP updates the classifier).
_base_ = ['./segformer-mit-b0_svdp.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
