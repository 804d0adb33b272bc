# The embedded benchmark with DeYO + STAG.
_base_ = ['./segformer-mit-b0_deyo.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
