# Cityscapes->ACDC with Tent + STAG in logit space, lambda 4: the reading that slowed Tent's
# decline most on the demo stream, and among the most harmful on Digits-C
# (projects/stag_study/README.md); not measured on ACDC itself.
_base_ = ['./segformer-b5_tent_stag.py']
model = dict(
    tta_method=dict(
        regularizers=[dict(type='STAG', mode='loss', space='logit', weighting='none',
                           weight=4.0)]))
