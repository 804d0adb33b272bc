# CIFAR-100-C continual, ResNeXt-29: ROID + STAG (its default reading, on ROID's weights and kept
# samples).
_base_ = ['./resnext-29_roid.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
