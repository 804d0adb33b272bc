# Digits-C, the embedded classification benchmark: the 800 test digits of scikit-learn's digits
# (tools/make_digits.py) under the 15 ImageNet-C corruptions (tools/make_corrupted.py, CIFAR-C
# layout). The continual stream visits the corruptions in the benchmarks' order at one
# severity, batch size 64; tools/run_cls_benchmark.py derives the wild settings from it.
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
    dataset=dict(type='CIFARCDataset', data_root=data_root, corruption=corruptions[0],
                 severity=5, num_classes=10, serialize_data=False,
                 pipeline=[dict(type='PackInputs')]))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict(
    type='ContinualTestLoop', domains=corruptions, domain_key='corruption',
    metric_key='accuracy/top1', rounds=1, episodic=False)
