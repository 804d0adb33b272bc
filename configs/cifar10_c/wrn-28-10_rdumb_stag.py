# CIFAR-10-C continual, WRN-28-10: RDumb + STAG (its default reading).
_base_ = ['./wrn-28-10_rdumb.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
