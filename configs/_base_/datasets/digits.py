# The clean digits (tools/make_digits.py): training split with small random shifts, and the
# clean test split for validation. The source models of Digits-C are trained on these.
data_root = 'data/digits'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=3, padding_mode='edge'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='NumpyClsDataset', data_root=data_root + '/train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=200,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='NumpyClsDataset', data_root=data_root + '/test',
                 pipeline=[dict(type='PackInputs')]))
val_evaluator = dict(type='Accuracy', topk=(1, ))
val_cfg = dict(type='ValLoop')
