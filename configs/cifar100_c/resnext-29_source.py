# CIFAR-100-C continual, ResNeXt-29 (BatchNorm): the source model, never adapted. The stream
# (configs/_base_/datasets/cifar100_c.py): the 15 corruptions at severity 5 in the usual order,
# 10,000 images each in the reference repository's order, batch size 200, one round, read from
# data/CIFAR-100-C. The checkpoint and how to convert it: README.md in this folder. Seed 1, the
# reference's RNG_SEED: it orders the stream and seeds every method's randomness.
_base_ = [
    '../_base_/models/resnext-29_cifar100_tta.py', '../_base_/datasets/cifar100_c.py',
    '../_base_/default_runtime_cls.py'
]
randomness = dict(seed=1)
