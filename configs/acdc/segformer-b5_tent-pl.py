# Cityscapes->ACDC with the "TENT" of the public CoTTA segmentation code: norm-layer parameters
# trained on hard self-pseudo-labels (cross entropy), not entropy. This is what the published
# table's TENT rows measure (DESIGN.md section 4).
_base_ = ['./segformer-b5_tent.py']
model = dict(tta_method=dict(loss='pseudo_label'))
