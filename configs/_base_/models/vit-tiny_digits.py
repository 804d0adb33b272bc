# A small ViT for Digits-C (the LayerNorm transformer of the normalization-family comparison):
# 4x4 patches of the 32x32 digits (64 tokens + the class token), 4 blocks of width 64 with 4
# heads, the class token into one linear head. About 0.2 M parameters. Adapting configs set
# type='TTAImageClassifier' and a tta_method.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=False),
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128),
        img_size=32, patch_size=4, drop_rate=0.0, out_type='cls_token', final_norm=True),
    neck=None,
    head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
# the ViT rule of the public ImageNet-C scripts: lr * batch / 64, not doubled below 32
lr_scaling = dict(below_32=1.0)
