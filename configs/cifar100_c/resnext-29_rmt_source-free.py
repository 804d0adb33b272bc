# CIFAR-100-C continual, ResNeXt-29: RMT's source-free variant (no source replay, no warm-up;
# mariodoebler/test-time-adaptation scripts/run.sh: RMT.LAMBDA_CE_SRC 0.0 RMT.NUM_SAMPLES_WARM_UP
# 0). The source prototypes still come from the source images.
_base_ = ['./resnext-29_rmt.py']
model = dict(tta_method=dict(lambda_ce_src=0.0, warmup_samples=0))
