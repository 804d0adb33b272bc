# The Cityscapes->ACDC adaptation optimizer of the CoTTA protocol: Adam, lr 6e-5 / 8.
adapt_optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='Adam', lr=7.5e-6, betas=(0.9, 0.999)))
