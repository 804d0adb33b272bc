# The Digits-C source model with LayerNorm over (C, H, W), i.e. GroupNorm with one group (for
# the normalization-family comparison: configs/_base_/families/digits-c_ln.py,
# tools/run_suite.py --family ln).
_base_ = ['./small-convnet_train.py']
model = dict(backbone=dict(norm_cfg=dict(num_groups=1)))
