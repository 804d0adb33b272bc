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
# (mode='loss' was STAG's default when both studies were written; it is written out since the
# second study made the weighting reading the default)
readings = dict(
    feature=dict(mode='loss', space='feature', weighting='none'),
    logit=dict(mode='loss', space='logit', weighting='none'),
    h_weighted=dict(mode='loss', space='feature', weighting='entropy'),
    cross_entropy=dict(mode='loss', space='feature', gradient='cross_entropy', weighting='none'))
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

# The second study (README.md of this project, "The second study"), fixed before any of its runs:
# the weighting reading's options and the loss readings at smaller lambda, every option
# written out; the first study's cells plus two regimes; the rule's constants.
_feature = dict(space='feature', gradient='entropy')
phase2 = dict(
    candidates={
        'reweight-smooth': dict(_feature, mode='reweight', reweight='smooth', power=1.0),
        'reweight-threshold': dict(_feature, mode='reweight', reweight='threshold',
                                   threshold=0.0),
        'reweight-threshold+smooth': dict(_feature, mode='reweight',
                                          reweight='threshold+smooth', threshold=0.0,
                                          power=1.0),
        'feature-0.1': dict(readings['feature'], weight=0.1),
        'logit-0.1': dict(readings['logit'], weight=0.1),
        'h_weighted-0.1': dict(readings['h_weighted'], weight=0.1),
        'h_weighted-0.25': dict(readings['h_weighted'], weight=0.25),
        'cross_entropy-0.1': dict(readings['cross_entropy'], weight=0.1),
    },
    # cells beyond the first study's, Tent only: one where Tent works well with Adam, and a
    # long-horizon one at a small batch where it is prone to collapse; the rate as stated (no
    # batch rule)
    regimes=dict(
        adam=dict(setting='continual', methods=['tent'], batch_size=64, rounds=3,
                  optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999))),
        collapse=dict(setting='continual', methods=['tent'], batch_size=16, rounds=5,
                      optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999)))),
    # held-out segmentation (the README's "Held-out"): each stream is a suite config whose
    # cfg_options make it (3 rounds; the calibrated one's data root); one run per method
    # without and with the chosen candidate, each with its config's own seed
    segmentation=dict(
        config_path='configs/demo/segformer-mit-b0_{}.py',
        methods=['tent', 'sar'],
        streams=dict(demo='configs/suites/demo.py',
                     calibrated='configs/suites/demo-calibrated.py')),
    harm_margin=0.5,  # error points, beyond noise_se standard errors
    rank_regimes=['collapse'],
    benchmark='A')  # the base hyperparameters the first study chose (results/benchmark.json)
