# DeYO on the BatchNorm ResNet-50 as DeYO's own script runs it in its mild ImageNet-C setting
# (Jhyun17/DeYO exp_deyo.sh: batch size 64, PLPD threshold 0.3; its code default and its wild
# settings, ResNet50-GN and ViT-B/16, use 0.2), layer4 left alone (./deyo-cls_resnet.py).
_base_ = ['./deyo-cls_resnet.py']
tta_method = dict(plpd_threshold=0.3)
