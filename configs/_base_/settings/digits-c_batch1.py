# Digits-C, batch size 1: the continual stream at batch size 1 on a seeded subset of 100 images
# per corruption (SAR's wild setting, Niu et al., ICLR 2023). The learning rate follows the
# batch by each method's rule (its config's lr_scaling: stag_seg.engine.prepare_config).
# An overlay on a Digits-C config (configs/digits_c/README.md):
#   python tools/test_tta.py configs/digits_c/small-convnet_sar.py \
#       --overlay configs/_base_/settings/digits-c_batch1.py
test_dataloader = dict(
    batch_size=1,
    # '0': merged into the first (the only) data set of the stream, as --cfg-options
    # test_dataloader.dataset.datasets.0.num_images=100 would
    dataset=dict(datasets={'0': dict(num_images=100, seed=0)}))
# the subset follows the run's seed too (randomness.seed)
seed_keys = ['test_dataloader.dataset.seed', 'test_dataloader.dataset.datasets.0.seed']
