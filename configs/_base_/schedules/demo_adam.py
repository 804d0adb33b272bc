# The embedded benchmark's adaptation optimizer: Adam at a learning rate where plain Tent
# degrades round after round at batch size 1 (DESIGN.md section 2, 'What is known empirically').
adapt_optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999)))
