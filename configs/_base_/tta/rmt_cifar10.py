# RMT on CIFAR-10-C: ./rmt.py with its labelled source images, the CIFAR-10 training split
# (../datasets/cifar10_source.py; warm-up: 50,000 images = 250 batches of 200).
_base_ = ['./rmt.py', '../datasets/cifar10_source.py']
tta_method = dict(source_data={{_base_.source_data}})
