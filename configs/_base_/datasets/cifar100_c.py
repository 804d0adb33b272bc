# CIFAR-100-C continual: the stream of ./cifar10_c.py (15 corruptions at severity 5, 10,000
# images each in mariodoebler/test-time-adaptation's order, batch size 200, one round) on
# data/CIFAR-100-C/<corruption>.npy and labels.npy, 100 classes
# (classification/cfgs/cifar100_c/*.yaml).
_base_ = ['./cifar10_c.py']
data_root = 'data/CIFAR-100-C'
num_classes = 100
test_dataloader = dict(
    dataset=dict(datasets=[
        dict(type='CIFARCDataset', data_root=data_root, corruption='gaussian_noise',
             severity=5, num_classes=num_classes, serialize_data=False,
             pipeline=[dict(type='PackInputs')])
    ]))
