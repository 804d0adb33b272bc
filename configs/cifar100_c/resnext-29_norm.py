# CIFAR-100-C continual, ResNeXt-29: test-batch BatchNorm statistics ("BN adapt",
# mariodoebler/test-time-adaptation's cfgs/cifar100_c/norm_test.yaml); nothing is trained.
_base_ = ['./resnext-29_source.py', '../_base_/tta/norm.py']
model = dict(tta_method={{_base_.tta_method}})
