# Cityscapes->ACDC with SVDP + STAG (live anchors: SVDP updates the classifier). STAG is added to
# SVDP's cross entropy on every decoder position with weight 1.
_base_ = ['./segformer-b5_svdp_lr3e-4.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
