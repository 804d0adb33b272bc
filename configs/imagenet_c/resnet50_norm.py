# ImageNet-C continual, ResNet-50 (BN): test-batch BatchNorm statistics ("BN adapt"); nothing is
# trained.
_base_ = ['./resnet50_source.py', '../_base_/tta/norm.py']
model = dict(tta_method={{_base_.tta_method}})
