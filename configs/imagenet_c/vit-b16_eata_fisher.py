# ImageNet-C continual, ViT-B/16: EATA with its Fisher penalty (alpha 2000), estimated on 2000
# clean ImageNet validation images (data/imagenet/val;
# configs/_base_/datasets/imagenet_fisher.py).
_base_ = ['./vit-b16_eata.py', '../_base_/datasets/imagenet_fisher.py']
model = dict(tta_method=dict(fisher_data={{_base_.fisher_data}}))
