# ResNet-50 with GroupNorm (32 groups) for ImageNet-1k as a TTAImageClassifier: the model of
# timm's resnet50_gn (SAR's and DeYO's "ResNet50-GN"), whose weights in timm 0.6.12 (SAR) and
# later (resnet50_gn.a1h_in1k) are
#   https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/resnet50_gn_a1h2-8fe6c4d0.pth
# A timm checkpoint does not load as it is: mmpretrain names the norm layers gn1/gn2/gn3 where
# timm has bn1/bn2/bn3 (downsample.1 is the same in both), and puts backbone. / head. in front
# of the keys (fc -> head.fc). Convert it first:
#   python tools/convert_timm_classifier.py resnet50_gn_a1h2-8fe6c4d0.pth CHECKPOINT \
#       --arch resnet-gn
# Normalisation: timm's default config of resnet50_gn is the ImageNet mean/std, as here (it was
# evaluated at 224 with crop 0.94, bicubic; ImageNet-C images are already 224 x 224).
_base_ = ['./resnet50_in1k_tta.py']
model = dict(backbone=dict(norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)))
