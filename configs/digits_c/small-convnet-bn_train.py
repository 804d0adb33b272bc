# The Digits-C source model with BatchNorm instead of GroupNorm (for the normalization-family
# comparison: configs/_base_/families/digits-c_bn.py, tools/run_suite.py --family bn).
_base_ = ['./small-convnet_train.py']
model = dict(backbone=dict(norm_cfg=dict(_delete_=True, type='BN', requires_grad=True)))
