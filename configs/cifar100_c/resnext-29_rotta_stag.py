# CIFAR-100-C continual, ResNeXt-29: RoTTA + STAG (its default reading, on the memory forward).
_base_ = ['./resnext-29_rotta.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
