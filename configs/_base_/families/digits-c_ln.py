# Digits-C with SmallConvNet in LayerNorm over (C, H, W), i.e. GroupNorm with one group (the
# normalization-family comparison): the model of configs/digits_c/small-convnet-ln_train.py and
# its committed checkpoint in place of the GroupNorm one. An overlay on a Digits-C config
# (configs/digits_c/README.md):
#   python tools/test_tta.py configs/digits_c/small-convnet_tent.py \
#       --overlay configs/_base_/families/digits-c_ln.py
model = dict(backbone=dict(norm_cfg=dict(num_groups=1)))
load_from = 'checkpoints/small-convnet-ln_digits.pth'
