# STAG with its defaults, which live in one place, the signature of stag_seg.stag.STAG: the
# weighting reading (mode='reweight'), each of the method's per-sample (per-pixel) loss terms
# times the detached (1 + cos) / 2 of its alignment, chosen by the second pre-registered study
# (projects/stag_study/README.md; docs/design.md, "STAG"). Add it to a method with
#   model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
# or write a variant as dict(type='STAG', mode='loss', space='logit', weight=4.0).
stag = dict(type='STAG')
