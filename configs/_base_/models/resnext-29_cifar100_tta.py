# ResNeXt-29 (cardinality 4, width 32) for CIFAR-100 as a TTAImageClassifier: Source until a
# config sets model.tta_method and model.adapt_optim_wrapper. The CIFAR-100-C source model of
# CoTTA, RoTTA, RMT and ROID: RobustBench's CIFAR-100 'Hendrycks2020AugMix_ResNeXt' (AugMix,
# Hendrycks et al., ICLR 2020), which normalises [0, 1] RGB inside the model as (x - 0.5) / 0.5;
# here the data preprocessor does, with mean = std = 127.5 in 0-255 units. Its checkpoint,
# Hendrycks2020AugMix_ResNeXt.pt, converts with
#   tools/convert_timm_classifier.py Hendrycks2020AugMix_ResNeXt.pt CHECKPOINT \
#       --arch robustbench-resnext
model = dict(
    type='TTAImageClassifier',
    tta_method=dict(type='Source'),
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=100, mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=False),
    backbone=dict(type='CifarResNeXt', depth=29, cardinality=4, base_width=32),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=100, in_channels=1024,
              loss=dict(type='CrossEntropyLoss')))
