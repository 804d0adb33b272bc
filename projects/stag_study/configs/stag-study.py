# The pre-registered study of STAG's readings (README.md of this project, "The study"): its
# split, the benchmark candidates, the grid of readings and the rule's constants.
#   python projects/stag_study/tools/run_stag_study.py \
#       projects/stag_study/configs/stag-study.py PHASE [--out DIR]
# PHASE: benchmark (the base hyperparameters, dev), readings (the grid, dev), held-out (the
# chosen default and its base methods, once). Each run is a Digits-C config with the family's
# and the setting's overlays (configs/suites/digits-c.py), the candidate's options and the
# split's corruptions; its results go to <out>/<phase>/<run key>/.
config_path = 'configs/digits_c/small-convnet_{}.py'
suite = 'configs/suites/digits-c.py'  # the settings' and the families' overlays
out = 'work_dirs/stag_study'
_order = [
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur', 'motion_blur',
    'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast', 'elastic_transform',
    'pixelate', 'jpeg_compression'
]
splits = dict(
    dev=dict(corruptions=_order[0::2], seeds=[0, 1, 2], families=['gn', 'bn']),
    held_out=dict(corruptions=_order[1::2], seeds=[3, 4, 5], families=['ln', 'vit']))
settings = ['continual', 'label_shift', 'batch1', 'mixed']
# the base hyperparameters: the batch size of every setting but batch1, and the rate stated at
# batch size 64 (the configs' lr_scaling scales it to the batch)
candidates = dict(
    A=dict(batch_size=64, lr=3e-3),
    B=dict(batch_size=64, lr=1e-3),
    C=dict(batch_size=16, lr=1e-3))
# the runs that the benchmark checks read: {family: {setting: [method, ...]}}
benchmark_runs = dict(
    bn=dict(continual=['source', 'norm', 'tent']),
    gn=dict(continual=['source', 'tent', 'sar'], label_shift=['source', 'tent', 'sar'],
            batch1=['source', 'tent', 'sar'], mixed=['source', 'tent', 'sar']))
base_methods = ['tent', 'sar']
# every option that a reading differs in is written out, so that the grid does not follow
# STAG's defaults (which the study chose: h_weighted)
readings = dict(
    feature=dict(space='feature', weighting='none'),
    logit=dict(space='logit', weighting='none'),
    h_weighted=dict(space='feature', weighting='entropy'),
    cross_entropy=dict(space='feature', gradient='cross_entropy', weighting='none'))
weights = [0.5, 2.0]
# the rule: a harmful change within `noise_se` standard errors of zero; a spread over seeds at
# most `spread_ratio` times the base's, the base's floored at `spread_floor` error points
noise_se = 2.0
spread_ratio = 2.0
spread_floor = 0.1
cfg_options = {
    'test_cfg.progress': False,
    'test_cfg.checkpoint_interval': 0,
    'log_level': 'WARNING',
}
