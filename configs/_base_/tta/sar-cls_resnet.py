# SAR as its classification code runs on ResNets: layer4's normalization layers are not
# adapted (mr-eggplant/SAR, main.py: the parameters of 'layer4' are skipped).
_base_ = ['./sar.py']
tta_method = dict(frozen_modules=['backbone.layer4'])
