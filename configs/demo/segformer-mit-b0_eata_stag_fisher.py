# The embedded benchmark with EATA + STAG and its Fisher penalty, estimated on 50
# images of the clean validation split of the generated source domain.
_base_ = ['./segformer-mit-b0_eata_fisher.py', '../_base_/tta/stag.py']
model = dict(tta_method=dict(regularizers=[{{_base_.stag}}]))
