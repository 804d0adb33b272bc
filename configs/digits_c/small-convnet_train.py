# Trains the Digits-C source model on the clean training split of scikit-learn's digits
# (tools/make_digits.py writes it; tools/train_source.py runs this config and exports the
# checkpoint). About 30 s on 2 CPU cores.
_base_ = [
    '../_base_/models/small-convnet_digits.py', '../_base_/datasets/digits.py',
    '../_base_/default_runtime_cls.py'
]
iters = 1500
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=500)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
