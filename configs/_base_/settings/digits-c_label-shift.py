# Digits-C, label shift: the continual stream with each corruption in class-sorted order (the
# classes in a seeded order), SAR's online imbalanced label shift at its most severe (Niu et
# al., ICLR 2023); batch size 64. An overlay on a Digits-C config (configs/digits_c/README.md):
#   python tools/test_tta.py configs/digits_c/small-convnet_tent.py \
#       --overlay configs/_base_/settings/digits-c_label-shift.py
test_dataloader = dict(dataset=dict(order='class_sorted'))
