# The embedded benchmark with DAT + STAG (live anchors: DAT may select the classifier).
_base_ = ['./segformer-mit-b0_dat.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
