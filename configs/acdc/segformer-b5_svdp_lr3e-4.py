# Cityscapes->ACDC with SVDP as the second run of its bash/svdp.sh (log/example_svdp_2.txt):
# Adam 3e-4, 51 prompted pixels (sparse rate 0.0001), prompt EMA scale 0.01.
_base_ = ['./segformer-b5_svdp.py']
model = dict(
    backbone=dict(prompt=dict(sparse_rate=0.0001)),
    tta_method=dict(prompt_scale=0.01),
    adapt_optim_wrapper=dict(optimizer=dict(lr=3e-4)))
