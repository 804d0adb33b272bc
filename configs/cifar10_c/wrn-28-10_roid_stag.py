# CIFAR-10-C continual, WRN-28-10: ROID + STAG (its default reading, on ROID's weights and kept
# samples).
_base_ = ['./wrn-28-10_roid.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
