# CoTTA (Wang et al., CVPR 2022): EMA teacher (0.999), labels averaged over 7 scales x flip where
# the source model's confidence is below 0.69, cross entropy on all parameters, stochastic
# restore (p = 0.01). Models stay in eval mode, as in the reference's segmentation code.
tta_method = dict(
    _delete_=True, type='CoTTA', alpha=0.999, confidence=0.69, restore_prob=0.01,
    scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), flip=True, batch_stats=False,
    regularizers=[])
