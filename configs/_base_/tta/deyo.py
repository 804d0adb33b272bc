# DeYO (Lee et al., ICLR 2024): patch-shuffled view (4 x 4), selection by entropy (H < 0.5 ln C)
# and PLPD (> 0.2), weights exp(0.4 ln C - H) + exp(PLPD); PLPD per pixel for segmentation.
tta_method = dict(
    _delete_=True, type='DeYO', aug='patch', patch_len=4, margin=None, e0=None,
    plpd_threshold=0.2, reweight_ent=1.0, reweight_plpd=1.0, regularizers=[])
