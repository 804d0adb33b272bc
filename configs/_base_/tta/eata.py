# EATA (Niu et al., ICML 2022): reliable (H < 0.4 ln C, per pixel), non-redundant (per image)
# entropy minimisation weighted by exp(e0 - H), with a Fisher penalty (alpha 2000) when a config
# adds model.tta_method.fisher_data (source images; see the _eata_fisher configs). d_margin:
# the paper's 0.05 is for ImageNet samples; street scenes are alike, see the README.
tta_method = dict(
    _delete_=True, type='EATA', e0=None, d_margin=0.05, fisher_alpha=2000.0, regularizers=[])
