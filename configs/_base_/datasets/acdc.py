# Cityscapes->ACDC, the CoTTA protocol (docs/design.md, "Protocols"): the 400 ACDC *train* images
# per condition, fog -> night -> rain -> snow, 10 rounds, batch size 1. Input resized to 960x540;
# labels are loaded after the resize, so predictions are scored at the original 1920x1080 with
# the 19 Cityscapes train ids. The optimizer is fresh at every domain visit, as the reference
# builds a new Adam in each per-domain call. Within a condition the images are sorted by file
# name; the reference iterates the file system's (unsorted) order, which no one can reproduce.
dataset_type = 'ACDCDataset'
data_root = 'data/acdc'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(960, 540), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# CoTTA's reference makes its teacher's views from the original image: keep it in each sample
original_views_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='KeepOriginalImage'),
    dict(type='Resize', scale=(960, 540), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs',
         meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                    'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label', 'ori_img')),
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
    episodic=False, optimizer_reset='domain')
