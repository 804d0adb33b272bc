# The Digits-C source model with LayerNorm over (C, H, W), i.e. GroupNorm with one group (for
# the normalization-family comparison of tools/run_cls_benchmark.py --family ln).
_base_ = ['./small-convnet_train.py']
model = dict(backbone=dict(norm_cfg=dict(num_groups=1)))
