# ROID (Marsden et al., WACV 2024) as mariodoebler/test-time-adaptation runs it (conf.py _C.ROID
# and cfgs/*/roid.yaml): diversity and certainty weights (temperature 1/3), the soft likelihood
# ratio and the consistency term on ROID's strong view, weight ensembling with the source
# (momentum 0.99), the moving mean prediction (0.9) and the prior correction of the logits. The
# loss is divided by the test batch size (TEST.BATCH_SIZE there): batch_size=None takes the
# first batch's size, the loader's.
tta_method = dict(
    _delete_=True, type='ROID', momentum_src=0.99, momentum_probs=0.9, temperature=1 / 3,
    use_weighting=True, use_prior_correction=True, use_consistency=True, batch_size=None,
    regularizers=[])
