# RDumb (Press et al., NeurIPS 2023): ETA, i.e. EATA without its Fisher penalty (reliable
# samples H < 0.4 ln C, non-redundant ones |cos| < d_margin, entropy weighted by exp(e0 - H)),
# and every weight, the optimizer and EATA's moving average back to the source after every
# 1000th step. As mariodoebler/test-time-adaptation configures it
# (classification/cfgs/imagenet_c/rdumb.yaml: ADAPTATION eata, EATA.FISHER_ALPHA 0.0,
# EATA.D_MARGIN 0.05, MODEL.RESET_AFTER_NUM_UPDATES 1000; e0 = EATA.MARGIN_E0 0.4 times ln C,
# conf.py); the official oripress/CCC models/rdumb.py resets at the same steps and fixes
# d_margin 0.05. The reset is the schedule every method has (reset_every).
tta_method = dict(
    _delete_=True, type='RDumb', e0=None, d_margin=0.05, reset_every=1000, regularizers=[])
