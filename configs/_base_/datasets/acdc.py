# Cityscapes->ACDC, the CoTTA protocol (DESIGN.md section 4): the 400 ACDC *train* images per
# condition in file-name order, fog -> night -> rain -> snow, 10 rounds, batch size 1. Input
# resized to 960x540; labels are loaded after the resize, so predictions are scored at the
# original 1920x1080 with the 19 Cityscapes train ids.
dataset_type = 'ACDCDataset'
data_root = 'data/acdc'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(960, 540), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_cfg = dict(
    type='ContinualTestLoop', domains=['fog', 'night', 'rain', 'snow'], rounds=10,
    episodic=False)
