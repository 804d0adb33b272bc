# The embedded classification benchmark's model: SmallConvNet (4 convs, GroupNorm with 8
# groups) + global average pooling + a linear classifier over the 10 digits. GroupNorm keeps
# batch size 1 and label-shifted batches meaningful (a BatchNorm model normalises with the
# statistics of such batches; SAR, Niu et al. ICLR 2023, Sec. 4). Adapting configs set
# type='TTAImageClassifier' and a tta_method.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=False),
    backbone=dict(type='SmallConvNet', channels=(16, 32, 64, 64), strides=(1, 2, 2, 1),
                  norm_cfg=dict(type='GN', num_groups=8, requires_grad=True)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
