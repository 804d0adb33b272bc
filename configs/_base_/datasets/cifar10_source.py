# The labelled CIFAR-10 training split (50,000 images) as RMT's source images, read as
# mariodoebler/test-time-adaptation's get_source_loader reads them (torchvision's CIFAR10, no
# augmentation, shuffled, at the test batch size, 200): mmpretrain's CIFAR10 data set on the same
# files, data/cifar10/cifar-10-batches-py (the python version of the release; never downloaded
# at run time).
source_data = dict(
    dataloader=dict(
        batch_size=200, num_workers=2,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
        dataset=dict(type='CIFAR10', data_root='data/cifar10', split='train', download=False,
                     pipeline=[dict(type='PackInputs')])))
