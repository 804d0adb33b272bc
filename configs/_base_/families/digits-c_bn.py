# Digits-C with SmallConvNet in BatchNorm (the normalization-family comparison): the model of
# configs/digits_c/small-convnet-bn_train.py and its committed checkpoint in place of the
# GroupNorm one. An overlay on a Digits-C config (configs/digits_c/README.md):
#   python tools/test_tta.py configs/digits_c/small-convnet_norm.py \
#       --overlay configs/_base_/families/digits-c_bn.py
model = dict(backbone=dict(norm_cfg=dict(_delete_=True, type='BN', requires_grad=True)))
load_from = 'checkpoints/small-convnet-bn_digits.pth'
