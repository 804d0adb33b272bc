# STAG with its defaults, which live in one place, the signature of stag_seg.stag.STAG: the
# feature reading weighted by the normalised entropy, lambda 0.5, chosen by the pre-registered
# study (projects/stag_study/README.md; docs/design.md, "STAG"). Add it to a method with
#   model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
# and set an option in a variant with dict({{_base_.stag}}, space='logit', weight=4.0).
stag = dict(type='STAG')
