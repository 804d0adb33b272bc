# The embedded benchmark with Tent + STAG in the default reading (feature space, lambda 1).
_base_ = ['./segformer-mit-b0_tent.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
