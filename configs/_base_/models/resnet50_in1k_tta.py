# ResNet-50 (BatchNorm) for ImageNet-1k as a TTAImageClassifier: Source until a config sets
# model.tta_method and model.adapt_optim_wrapper. The layout of mmpretrain's resnet50_8xb32_in1k
# (backbone.*, head.fc.*), e.g. its checkpoint
#   https://download.openmmlab.com/mmclassification/v0/resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth
# The ImageNet-C literature (Tent, EATA, SAR, DeYO; CoTTA through RobustBench's Standard_R50)
# uses torchvision's resnet50 IMAGENET1K_V1 weights (resnet50-19c8e357.pth); they need only the
# backbone. / head. prefixes, which tools/convert_timm_classifier.py --arch resnet (or mmpretrain's
# tools/model_converters/torchvision_to_mmpretrain.py) adds. Both checkpoints expect RGB
# normalised with the ImageNet mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225), here in
# 0-255 units.
_base_ = ['mmpretrain::_base_/models/resnet50.py']
model = dict(
    type='TTAImageClassifier',
    tta_method=dict(type='Source'),
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=1000, mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], to_rgb=True))
