# CIFAR-10-C continual, WRN-28-10: RoTTA + STAG (its default reading, on the memory forward).
_base_ = ['./wrn-28-10_rotta.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
