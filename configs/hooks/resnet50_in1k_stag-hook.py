# mmpretrain's stock ResNet-50 ImageNet config, tested with online Tent + STAG by a hook
# (SGD lr 2.5e-4 at batch size 64, the public Tent default, scaled to this config's 32).
# Only custom_imports, custom_hooks and the data path are added; run it with mmpretrain's
# tools/test.py (or tools/test_tta.py):  python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['mmpretrain::resnet/resnet50_8xb32_in1k.py']
custom_imports = dict(imports=['stag_seg'], allow_failed_imports=False)
custom_hooks = [
    dict(type='STAGHook', method=dict(type='Tent'),
         optim_wrapper=dict(optimizer=dict(type='SGD', lr=1.25e-4, momentum=0.9)))
]
test_dataloader = dict(dataset=dict(data_root='data/imagenet'))
