# STAG with the defaults of docs/design.md, "STAG"; add it to a method with
#   model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
stag = dict(type='STAG', weight=1.0, space='feature', form='gram', temperature=1.0,
            use_bias=True, anchors='frozen')
