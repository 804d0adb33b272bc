# ImageNet-C continual, ResNet-50 (BN): CoTTA as its classification code runs
# (configs/_base_/tta/cotta-cls.py: EMA teacher, 32 random views for unconfident batches, restore
# probability 0.001); the method brings its own optimizer, SGD lr 0.01 with Nesterov momentum 0.9
# on all parameters.
_base_ = ['./resnet50_source.py', '../_base_/tta/cotta-cls.py']
model = dict(tta_method={{_base_.tta_method}})
