# DeYO as its classification code runs on ResNets: layer4's normalization layers are not
# adapted (Jhyun17/DeYO, deyo.py collect_params skips 'layer4', as SAR's code does).
_base_ = ['./deyo.py']
tta_method = dict(frozen_modules=['backbone.layer4'])
