# The "TENT" of the public CoTTA segmentation code, as its published Cityscapes->ACDC table ran
# it (docs/design.md, "Protocols"): the norm-layer affine parameters trained with cross entropy
# on hard self-pseudo-labels; the whole model in eval mode (the decode head's BatchNorm keeps
# its running statistics, so the first prediction is the source's); the label is the argmax of
# the full-resolution slide prediction and the loss is taken over every pixel of the decode
# head's logits upsampled to the original size.
tta_method = dict(
    _delete_=True, type='Tent', loss='pseudo_label', batch_stats=False, resolution='original',
    regularizers=[])
