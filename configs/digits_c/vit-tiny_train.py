# Trains the small ViT of the normalization-family comparison on the clean digits
# (tools/train_source.py): AdamW with warm-up and cosine decay, as transformers are trained.
_base_ = [
    '../_base_/models/vit-tiny_digits.py', '../_base_/datasets/digits.py',
    '../_base_/default_runtime_cls.py'
]
iters = 3000
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=iters - 200, by_epoch=False, begin=200, end=iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=1000)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
