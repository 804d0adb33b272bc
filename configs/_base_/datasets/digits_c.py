# Digits-C, the embedded classification benchmark: the 800 test digits of scikit-learn's digits
# (tools/make_digits.py) under the 15 ImageNet-C corruptions (tools/make_corrupted.py, CIFAR-C
# layout). This is the continual setting: the corruptions one after another in the benchmarks'
# order at one severity, each read in a seeded shuffle (a StreamDataset around the corruption's
# data set, order 'mixed'), batch size 64. The wild settings (label shift, batch size 1, mixed
# corruptions) are overlays that change a few of these keys: configs/_base_/settings/ and
# configs/digits_c/README.md.
corruptions = [
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur', 'motion_blur',
    'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast', 'elastic_transform',
    'pixelate', 'jpeg_compression'
]
data_root = 'data/digits_c'
test_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='StreamDataset',
        datasets=[
            dict(type='CIFARCDataset', data_root=data_root, corruption=corruptions[0],
                 severity=5, num_classes=10, serialize_data=False,
                 pipeline=[dict(type='PackInputs')])
        ],
        order='mixed',
        seed=0))
test_evaluator = dict(type='Accuracy', topk=(1, ))
# each domain names the corruption of the stream's one data set
test_cfg = dict(
    type='ContinualTestLoop', domains=corruptions, domain_key='datasets.0.corruption',
    metric_key='accuracy/top1', rounds=1, episodic=False)
# One seed per run: tools/test_tta.py and tools/run_suite.py set each key named here to
# randomness.seed (stag_seg.engine.prepare_config), so `--cfg-options randomness.seed=1`
# changes the stream order as well as the methods' own randomness.
seed_keys = ['test_dataloader.dataset.seed']
