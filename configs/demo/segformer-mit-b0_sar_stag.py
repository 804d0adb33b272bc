# The embedded benchmark with sar + STAG.
_base_ = ['./segformer-mit-b0_sar.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
