# The ImageNet-C adaptation optimizer of Tent, EATA, SAR and DeYO for ViT-B/16: SGD, momentum
# 0.9, lr 1e-3 at batch size 64 (SAR and DeYO main.py: lr = 0.001 / 64 * batch size for
# vitbase_timm; ResNet50-GN keeps 2.5e-4, see imagenet-c_sgd_lr2.5e-4.py).
adapt_optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-3, momentum=0.9))
