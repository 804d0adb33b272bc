# Digits-C with Norm (test-batch BatchNorm statistics, nothing trained). The default model
# uses GroupNorm, for which this is the source model; it matters for the BatchNorm family
# (--overlay configs/_base_/families/digits-c_bn.py; tools/run_suite.py --family bn).
_base_ = ['./small-convnet_source.py', '../_base_/tta/norm.py']
model = dict(tta_method={{_base_.tta_method}})
