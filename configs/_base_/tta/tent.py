# Tent (Wang et al., ICLR 2021): entropy minimisation on normalization-layer affine parameters.
# loss='pseudo_label' reproduces the "TENT" of the public CoTTA segmentation code.
tta_method = dict(_delete_=True, type='Tent', loss='entropy', regularizers=[])
