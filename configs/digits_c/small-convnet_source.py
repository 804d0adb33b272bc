# Digits-C (15 corruptions, severity 5, batch size 64) with the source model, never adapted.
# The checkpoint is committed (tools/train_source.py configs/digits_c/small-convnet_train.py).
_base_ = [
    '../_base_/models/small-convnet_digits.py', '../_base_/datasets/digits_c.py',
    '../_base_/default_runtime_cls.py'
]
model = dict(type='TTAImageClassifier', tta_method=dict(type='Source'))
load_from = 'checkpoints/small-convnet_digits.pth'
