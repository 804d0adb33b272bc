# RDumb on CIFAR-10-C / CIFAR-100-C: ./rdumb.py with d_margin 0.4, as mariodoebler/
# test-time-adaptation's cfgs/cifar10_c/rdumb.yaml and cfgs/cifar100_c/rdumb.yaml (EATA.D_MARGIN
# 0.4; 0.05 on ImageNet-C; the EATA paper's CIFAR value is also 0.4).
_base_ = ['./rdumb.py']
tta_method = dict(d_margin=0.4)
