# The embedded benchmark: synthetic street scenes under fog, night, rain and snow, laid out like
# ACDC (tools/make_synthetic_acdc.py writes it). Images are 256x128; scored at that size.
dataset_type = 'ACDCDataset'
data_root = 'data/synthetic_acdc'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
# The stream: each round visits the domains in this order; the model is never reset.
test_cfg = dict(
    type='ContinualTestLoop', domains=['fog', 'night', 'rain', 'snow'], rounds=3, episodic=False)
