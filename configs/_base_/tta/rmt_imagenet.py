# RMT on ImageNet-C: ./rmt.py with its labelled source images, the ImageNet training split
# (../datasets/imagenet_source.py).
_base_ = ['./rmt.py', '../datasets/imagenet_source.py']
tta_method = dict(source_data={{_base_.source_data}})
