# Cityscapes->ACDC with DAT + STAG (live anchors: DAT may select the classifier). STAG is added
# to both of DAT's losses on all decoder positions with weight 1; its gradient reaches only the
# tensors DAT selects.
_base_ = ['./segformer-b5_dat.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', anchors='live')]))
