# CIFAR-100-C continual, ResNeXt-29: Tent + STAG (its default reading).
_base_ = ['./resnext-29_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
