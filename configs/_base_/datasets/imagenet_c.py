# ImageNet-C continual (docs/design.md, "Protocols"): the 15 corruptions at severity 5 in the
# order of the common benchmarks (Tent, EATA, SAR, DeYO; mariodoebler/test-time-adaptation
# classification/cfgs/imagenet_c/*.yaml), one round, batch size 64, top-1 accuracy per corruption.
# Layout (Hendrycks & Dietterich, ICLR 2019): data/imagenet-c/<corruption>/5/<wnid>/*.JPEG, the
# images already 224 x 224 (ImageNet val resized to 256 and centre-cropped).
#
# Images per corruption: a seeded subset of 5000 (the same files in every corruption, seed 0;
# the size of the RobustBench / CoTTA / mariodoebler 5000-image protocol, though not
# RobustBench's own list of ids). All 50000:  --cfg-options test_dataloader.dataset.num_images=None
#
# Order inside a corruption: the files are sorted by class, and a class-sorted stream is the
# label-shift setting, not this benchmark, so the sampler shuffles them with the runner's seed
# (randomness.seed, 0): the same order in every run and every round.
dataset_type = 'ImageNetCDataset'
data_root = 'data/imagenet-c'
corruptions = [
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
    'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
    'elastic_transform', 'pixelate', 'jpeg_compression'
]
test_pipeline = [
    # decoded with Pillow, as the reference code (torchvision's ImageFolder) does
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='CenterCrop', crop_size=224),  # a no-op on ImageNet-C, as in SAR / DeYO
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, corruption=corruptions[0], severity=5,
        num_images=5000, seed=0, pipeline=test_pipeline))
test_evaluator = dict(type='Accuracy', topk=(1, 5))
test_cfg = dict(
    type='ContinualTestLoop', domains=corruptions, domain_key='corruption',
    metric_key='accuracy/top1', rounds=1, episodic=False)
