# EATA for segmentation (this toolkit's reading; configs/_base_/tta/eata.py has the paper's
# classification defaults): reliability and weights per pixel, the redundancy filter per image
# on the mean distribution of its reliable pixels. Street scenes of one stream are alike: on the
# embedded benchmark, that mean's cosine to the moving average has a median of 0.958 (5-95%:
# 0.846-0.988), so the paper's d_margin 0.05 would drop every image; 0.95 keeps the ~45% least
# redundant ones.
tta_method = dict(
    _delete_=True, type='EATA', e0=None, d_margin=0.95, fisher_alpha=2000.0, regularizers=[])
