# Cityscapes->ACDC, DeYO + STAG at the tuned learning rate of later re-runs (Adam 3e-4).
_base_ = ['./segformer-b5_deyo_stag.py']
model = dict(adapt_optim_wrapper=dict(optimizer=dict(lr=3e-4)))
