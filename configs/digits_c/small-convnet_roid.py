# Digits-C with ROID (../_base_/tta/roid.py) at the Digits-C optimizer of the other methods.
# Once the predictions of a batch no longer differ (batch size 1, or a model that has collapsed
# to one class), ROID's min-max normalisations are 0/0: the reference then writes NaN into the
# model. Here such a step is not applied; on_bad_input='skip' keeps the run going and counts each
# (nonfinite_steps in the results), so the row shows where ROID ends; the prediction (with the
# prior correction) is still scored.
_base_ = [
    './small-convnet_source.py', '../_base_/tta/roid.py', '../_base_/schedules/digits_sgd.py'
]
model = dict(tta_method={{_base_.tta_method}}, adapt_optim_wrapper={{_base_.adapt_optim_wrapper}})
test_cfg = dict(on_bad_input='skip')
