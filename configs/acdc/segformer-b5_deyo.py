# Cityscapes->ACDC with DeYO (patch-shuffled view, entropy and per-pixel PLPD selection); Adam
# 7.5e-6.
_base_ = ['./segformer-b5_source.py', '../_base_/tta/deyo.py', '../_base_/schedules/acdc_adam.py']
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
