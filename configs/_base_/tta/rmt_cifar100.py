# RMT on CIFAR-100-C: ./rmt.py with its labelled source images, the CIFAR-100 training split
# (../datasets/cifar100_source.py; warm-up: 50,000 images = 250 batches of 200).
_base_ = ['./rmt.py', '../datasets/cifar100_source.py']
tta_method = dict(source_data={{_base_.source_data}})
