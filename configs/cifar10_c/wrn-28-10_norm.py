# CIFAR-10-C continual, WRN-28-10: test-batch BatchNorm statistics ("BN adapt",
# mariodoebler/test-time-adaptation's cfgs/cifar10_c/norm_test.yaml); nothing is trained.
_base_ = ['./wrn-28-10_source.py', '../_base_/tta/norm.py']
model = dict(tta_method={{_base_.tta_method}})
