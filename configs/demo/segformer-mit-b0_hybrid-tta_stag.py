# The embedded benchmark with Hybrid-TTA + STAG (live anchors: Hybrid-TTA updates the
# classifier).
_base_ = ['./segformer-mit-b0_hybrid-tta.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
