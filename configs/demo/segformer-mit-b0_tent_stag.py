# The embedded benchmark with Tent + STAG.
_base_ = ['./segformer-mit-b0_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
