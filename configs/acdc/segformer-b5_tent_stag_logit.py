# Cityscapes->ACDC with Tent + STAG in logit space, lambda 4 (see configs/demo/ for the evidence;
# not yet measured on ACDC itself).
_base_ = ['./segformer-b5_tent_stag.py']
model = dict(tta_method=dict(regularizers=[dict(type='STAG', space='logit', weight=4.0)]))
