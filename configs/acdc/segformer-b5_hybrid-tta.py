# Cityscapes->ACDC with Hybrid-TTA as its README command runs it (scripts/ours.py with
# local_configs/segformer/B5/segformer.b5.960x540.acdc.160k.new.py): 10 rounds; the input
# resized to 960x544 without keeping the aspect ratio (the mask needs multiples of 32; 540 would
# not do); slide inference (crop 1024, stride 768: one window); Adam lr 7.5e-5 (the config's
# 6e-4 / 8), fresh at every domain visit; the NVlabs SegFormer-B5 with 52 adapters, the mask
# token and the reconstruction neck on its backbone (absent from the source checkpoint: their
# initial values, seeded by init_seed, as in the reference, which draws them from seed 42).
_base_ = ['./segformer-b5_source.py', '../_base_/tta/hybrid-tta.py']
model = dict(
    backbone=dict(_delete_=True, type='HybridTTABackbone',
                  backbone={{_base_.model.backbone}},
                  adapter_hidden=5, recon_channels=768, init_seed=42),
    tta_method={{_base_.tta_method}},
    adapt_optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=7.5e-5, betas=(0.9, 0.999))))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(960, 544), keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]))
test_cfg = dict(rounds=10, optimizer_reset='domain')
randomness = dict(seed=42)
