# Cityscapes->ACDC with EATA + STAG and its Fisher penalty, estimated on 500 Cityscapes
# validation images (data/cityscapes, resized like the stream).
_base_ = ['./segformer-b5_eata_fisher.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
