# Cityscapes->ACDC with Tent at the tuned learning rate of later re-runs (Adam 3e-4 instead of
# the protocol's 7.5e-6).
_base_ = ['./segformer-b5_tent.py']
model = dict(adapt_optim_wrapper=dict(optimizer=dict(lr=3e-4)))
