# DeYO with PLPD threshold 0.3: what DeYO's own script (Jhyun17/DeYO exp_deyo.sh) runs in its
# mild ImageNet-C setting (batch size 64, the BatchNorm ResNet-50); its code default and its
# wild settings (ResNet50-GN, ViT-B/16) use 0.2 (./deyo.py).
_base_ = ['./deyo.py']
tta_method = dict(plpd_threshold=0.3)
