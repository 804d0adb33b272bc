# Digits-C with the small ViT (LayerNorm; the normalization-family comparison): the model of
# configs/_base_/models/vit-tiny_digits.py (trained by configs/digits_c/vit-tiny_train.py) and
# its committed checkpoint in place of the GroupNorm SmallConvNet, with the ViT's learning-rate
# rule. An overlay on a Digits-C config (configs/digits_c/README.md):
#   python tools/test_tta.py configs/digits_c/small-convnet_tent.py \
#       --overlay configs/_base_/families/digits-c_vit.py
# The parts repeat configs/_base_/models/vit-tiny_digits.py (tests/test_digits_c.py checks that
# they agree): taken from there as a _base_, they would merge into the SmallConvNet's parts
# instead of replacing them (_delete_).
model = dict(
    data_preprocessor=dict(
        _delete_=True, type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
        std=[127.5] * 3, to_rgb=False),
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128),
        img_size=32, patch_size=4, drop_rate=0.0, out_type='cls_token', final_norm=True),
    neck=None,
    head=dict(_delete_=True, type='VisionTransformerClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
load_from = 'checkpoints/vit-tiny_digits.pth'
# the ViT rule of the public ImageNet-C scripts: lr * batch / 64, not doubled below 32
lr_scaling = dict(below_32=1.0)
