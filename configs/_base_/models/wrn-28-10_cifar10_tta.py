# WRN-28-10 for CIFAR-10 as a TTAImageClassifier: Source until a config sets model.tta_method and
# model.adapt_optim_wrapper. The CIFAR-10-C source model of Tent, CoTTA, RoTTA, RMT and ROID:
# RobustBench's CIFAR-10 'Standard' (corruptions threat model), trained without input
# normalisation on [0, 1] RGB; hence mean 0, std 255 here. Its checkpoint, Standard.pt, converts
# with  tools/convert_timm_classifier.py Standard.pt CHECKPOINT --arch robustbench-wrn
# (backbone.* and head.fc.* prefixes on RobustBench's own key names).
model = dict(
    type='TTAImageClassifier',
    tta_method=dict(type='Source'),
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[0.0] * 3,
                           std=[255.0] * 3, to_rgb=False),
    backbone=dict(type='CifarWideResNet', depth=28, widen_factor=10),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=640,
              loss=dict(type='CrossEntropyLoss')))
