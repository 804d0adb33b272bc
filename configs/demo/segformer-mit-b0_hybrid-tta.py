# The embedded benchmark with Hybrid-TTA (EMA teacher, masked student forward with a
# reconstruction loss, shift detector between full and adapter tuning); the adapters, mask token
# and reconstruction neck (256 channels, the head's width, as 768 is B5's) on MMSeg's MiT-B0.
# The 256x128 images are multiples of the 32-px mask squares (32 squares, 20 masked). Adam of
# the demo schedule, fresh at every domain visit, as the reference.
_base_ = [
    './segformer-mit-b0_source.py', '../_base_/tta/hybrid-tta.py',
    '../_base_/schedules/demo_adam.py'
]
model = dict(
    backbone=dict(_delete_=True, type='HybridTTABackbone',
                  backbone={{_base_.model.backbone}},
                  adapter_hidden=5, recon_channels=256, init_seed=42),
    tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
test_cfg = dict(optimizer_reset='domain')
