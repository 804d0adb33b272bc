# The labelled CIFAR-100 training split as RMT's source images (see ./cifar10_source.py):
# mmpretrain's CIFAR100 on data/cifar100/cifar-100-python, shuffled, batch size 200.
_base_ = ['./cifar10_source.py']
source_data = dict(dataloader=dict(dataset=dict(type='CIFAR100', data_root='data/cifar100')))
