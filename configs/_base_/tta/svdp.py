# SVDP (Yang et al., AAAI 2024) as its released step runs it (Anonymous-012/SVDP,
# mmseg/apis/test.py, single_gpu_svdp): CoTTA (EMA 0.999, 14 views, anchor gate 0.69, restore
# 0.01) with a sparse prompt added to the normalised image of every teacher view and of the
# student's input, at the pixels of the highest MC-dropout uncertainty (10 passes of the
# teacher's head with element-wise dropout 0.5). The prompt is never trained (as released).
# The model needs the prompt on its backbone, e.g.
#   model = dict(backbone=dict(_delete_=True, type='SparsePromptedBackbone',
#                              backbone={{_base_.model.backbone}},
#                              prompt=dict(sparse_rate=0.001, input_size=(540, 960), seed=42)))
tta_method = dict(
    _delete_=True, type='SVDP', alpha=0.999, confidence=0.69, restore_prob=0.01,
    mc_passes=10, mc_dropout=0.5, prompt_scale=0.1, seed=42,
    scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), flip=True, batch_stats=False,
    regularizers=[])
