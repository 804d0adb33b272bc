# ImageNet-C continual, ResNet-50 (BN): RMT with source replay and warm-up, its source images the
# ImageNet training split (../_base_/tta/rmt_imagenet.py); SGD lr 0.01, Nesterov momentum 0.9, batch
# size 64, as mariodoebler/test-time-adaptation's cfgs/imagenet_c/rmt.yaml. The source-free
# variant: resnet50_rmt_source-free.py.
_base_ = [
    './resnet50_source.py', '../_base_/tta/rmt_imagenet.py',
    '../_base_/schedules/imagenet-c_sgd-nesterov_lr1e-2.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
