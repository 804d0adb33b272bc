# Digits-C, mixed corruptions: one seeded shuffle of the 15 corruptions together, one domain
# (SAR's mixed distribution shifts, Niu et al., ICLR 2023); batch size 64. An overlay on a
# Digits-C config (configs/digits_c/README.md):
#   python tools/test_tta.py configs/digits_c/small-convnet_tent.py \
#       --overlay configs/_base_/settings/digits-c_mixed.py
# The corruptions are those of configs/_base_/datasets/digits_c.py, in its order.
test_cfg = dict(domains=[
    dict(name='mixed', dataset=dict(vary=dict(corruption=[
        'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
        'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
        'elastic_transform', 'pixelate', 'jpeg_compression'
    ])))
])
