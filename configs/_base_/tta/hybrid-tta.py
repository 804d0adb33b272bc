# Hybrid-TTA (Park et al., ICCV 2025) as its released step runs it (hhhyyeee/Hybrid-TTA,
# mmseg/apis/test_feat.py, single_gpu_our; the plain variant of the README command, without
# --aug-test): an EMA teacher (0.999) labels the image; the student's one forward is masked
# (60% of the 32-px squares, NumPy RandomState seed 42) and trained with CE + 0.3 x the masked
# L1 reconstruction; the shift detector (window 10, margin 0.1, threshold EMA 0.999 from 0.0)
# switches between full tuning and adapter tuning. The model needs the adapters, the mask token
# and the reconstruction neck on its MiT backbone, e.g.
#   model = dict(backbone=dict(_delete_=True, type='HybridTTABackbone',
#                              backbone={{_base_.model.backbone}},
#                              adapter_hidden=5, recon_channels=768, init_seed=42))
# and a fresh Adam at every domain visit (test_cfg.optimizer_reset='domain'; the method also
# resets it when a visit begins).
tta_method = dict(
    _delete_=True, type='HybridTTA', alpha=0.999, mask_ratio=0.6, mask_patch_size=32,
    recon_weight=0.3, window=10, margin=0.1, detector_alpha=0.999, threshold=0.0, seed=42,
    regularizers=[])
