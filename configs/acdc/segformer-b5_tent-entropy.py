# Cityscapes->ACDC with Tent's own objective (entropy, the paper's Eq. 2) instead of the
# published table's pseudo-label cross entropy; otherwise as segformer-b5_tent.py (eval mode),
# with the loss at the decode head's resolution. Not a row of the published table.
_base_ = ['./segformer-b5_tent.py']
model = dict(tta_method=dict(loss='entropy', resolution='decoder'))
