# CIFAR-10-C continual (Hendrycks & Dietterich, ICLR 2019), as mariodoebler/test-time-adaptation
# runs it (classification/cfgs/cifar10_c/*.yaml; datasets/data_loading.py): the 15 corruptions
# at severity 5 in the usual order, all 10,000 test images of each, batch size 200, one round,
# top-1 accuracy per corruption. Inside a corruption the images come in that repository's order:
# Python's random.shuffle after random.seed(RNG_SEED), RNG_SEED 1 (StreamDataset order
# 'python_shuffle'), so the batches there and here are the same images. The seed follows
# randomness.seed (seed_keys), which the leaf configs set to 1 as there; it also seeds the
# methods' own randomness.
# Layout (the released archive, unpacked into data/): data/CIFAR-10-C/<corruption>.npy (50,000 x
# 32 x 32 x 3 uint8, severities 1-5 one after another) and data/CIFAR-10-C/labels.npy.
corruptions = [
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur', 'motion_blur',
    'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast', 'elastic_transform',
    'pixelate', 'jpeg_compression'
]
data_root = 'data/CIFAR-10-C'
num_classes = 10
test_dataloader = dict(
    batch_size=200,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='StreamDataset',
        datasets=[
            dict(type='CIFARCDataset', data_root=data_root, corruption=corruptions[0],
                 severity=5, num_classes=num_classes, serialize_data=False,
                 pipeline=[dict(type='PackInputs')])
        ],
        order='python_shuffle',
        seed=1))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict(
    type='ContinualTestLoop', domains=corruptions, domain_key='datasets.0.corruption',
    metric_key='accuracy/top1', rounds=1, episodic=False)
seed_keys = ['test_dataloader.dataset.seed']
