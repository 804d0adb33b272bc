# Digits-C with Tent + STAG in the logit reading with lambda 4 (the reading that did best in
# an earlier digits experiment and on the segmentation demo).
_base_ = ['./small-convnet_tent.py']
model = dict(
    tta_method=dict(
        regularizers=[dict(type='STAG', mode='loss', space='logit', weighting='none',
                           weight=4.0)]))
