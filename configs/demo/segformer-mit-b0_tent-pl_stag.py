# The embedded benchmark with Tent (pseudo-label) + STAG.
_base_ = ['./segformer-mit-b0_tent-pl.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
