# The embedded benchmark with EATA + STAG.
_base_ = ['./segformer-mit-b0_eata.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
