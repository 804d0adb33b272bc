# MMSeg's stock SegFormer-B0 Cityscapes config, tested with online Tent + STAG by a hook.
# Only custom_imports, custom_hooks and the data path are added; run it with MMSeg's own
# tools/test.py (or tools/test_tta.py):  python tools/test.py THIS_CONFIG CHECKPOINT
_base_ = ['mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py']
custom_imports = dict(imports=['stag_seg'], allow_failed_imports=False)
custom_hooks = [
    dict(type='STAGHook', method=dict(type='Tent'),
         optim_wrapper=dict(optimizer=dict(type='Adam', lr=7.5e-6, betas=(0.9, 0.999))))
]
test_dataloader = dict(dataset=dict(data_root='data/cityscapes/'))
