# CIFAR-100-C continual, ResNeXt-29: RDumb + STAG (its default reading).
_base_ = ['./resnext-29_rdumb.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
