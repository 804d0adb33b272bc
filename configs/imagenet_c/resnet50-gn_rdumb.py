# ImageNet-C continual, ResNet-50-GN: RDumb (../_base_/tta/rdumb.py), EATA without the Fisher
# penalty, reset to the source every 1000 steps; SGD lr 2.5e-4, Nesterov momentum 0.9, batch size
# 64, as mariodoebler/test-time-adaptation's cfgs/imagenet_c/rdumb.yaml. On the 5000-image
# stream (1185 batches) the one reset comes after batch 1000, in elastic_transform.
_base_ = [
    './resnet50-gn_source.py', '../_base_/tta/rdumb.py',
    '../_base_/schedules/imagenet-c_sgd-nesterov_lr2.5e-4.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
