# The embedded benchmark with SAR + STAG.
_base_ = ['./segformer-mit-b0_sar.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
