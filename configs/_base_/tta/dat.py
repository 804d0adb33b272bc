# DAT (Ni et al., ICRA 2024) as its reference step runs it (RochelleNi/DAT, ours.py,
# single_gpu_our): CoTTA's EMA teacher (0.999) and 14-view label (anchor gate 0.69); the
# anchor's mean confidence u over the unflipped views at scales 1.0, 1.25, 1.5; cross entropy
# on u < 0.85 and on u > 0.99, each averaged over all pixels and back-propagated in turn; during
# the first 100 images of every domain visit the top 0.1% of the tensors by the L1 norm of their
# accumulated gradient join the selected list; a new Adam at every step over the selected
# tensors; no stochastic restore; the rate halves every round. Models stay in eval mode.
tta_method = dict(
    _delete_=True, type='DAT', alpha=0.999, confidence=0.69, low=0.85, high=0.99,
    uncertainty_scales=(1.0, 1.25, 1.5), window=100, fraction=0.001, round_lr_factor=0.5,
    scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), flip=True, batch_stats=False,
    regularizers=[])
