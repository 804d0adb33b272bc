# Digits-C: Source, Tent, EATA, SAR, DeYO and the continual baselines (RDumb, RoTTA, RMT, ROID),
# each with and without STAG, in the continual setting and the three "wild" ones of SAR (Niu et
# al., ICLR 2023), over the 15 corruptions, over seeds.
#   python tools/run_suite.py configs/suites/digits-c.py [--settings ...] [--methods ...]
#       [--seeds ...] [--family gn|bn|ln|vit] [--with logit] [--reuse] [--out DIR]
# (make demo-cls). Each run is a config of configs/digits_c/ with the family's and the setting's
# overlays (configs/digits_c/README.md), through MMEngine's runner; its results go to
# <out>/<setting>/<name>/seed<k>. The table gives the error (100 - top-1 accuracy, mean over
# the stream's domains) per setting, averaged over the seeds; table.{md,json} hold it with
# every seed's value. The seed is each run's randomness.seed, and so its stream order and
# batch-1 subset (the configs' seed_keys).
table = 'settings'
config_path = 'configs/digits_c/small-convnet_{}.py'
# the variants are the rows' methods with STAG
variant_label = '+ STAG'
variant_name = 'STAG'
rows = [
    dict(label='Source', plain='source'),
    # test-batch statistics only mean something with BatchNorm
    dict(label='Norm', plain='norm', families=['bn']),
    dict(label='Tent', plain='tent', variant='tent_stag'),
    # --with logit: STAG's logit reading with lambda 4
    dict(label='Tent, STAG logit λ=4', plain='tent', variant='tent_stag_logit',
         optional='logit'),
    dict(label='EATA (with Fisher)', plain='eata_fisher', variant='eata_stag_fisher'),
    dict(label='SAR', plain='sar', variant='sar_stag'),
    dict(label='DeYO', plain='deyo', variant='deyo_stag'),
    # --with continual: the continual baselines (docs/en/methods/), kept out of make demo-cls's
    # default table for its time (RMT warms up on the source data at every run: about a minute
    # each on 2 cores); RDumb resets only in the batch-1 setting
    dict(label='RDumb', plain='rdumb', variant='rdumb_stag', optional='continual'),
    dict(label='RoTTA', plain='rotta', variant='rotta_stag', optional='continual'),
    dict(label='RMT (source replay)', plain='rmt', variant='rmt_stag', optional='continual'),
    dict(label='ROID', plain='roid', variant='roid_stag', optional='continual'),
]
settings = dict(
    continual=[],  # the configs as they are
    label_shift=['configs/_base_/settings/digits-c_label-shift.py'],
    batch1=['configs/_base_/settings/digits-c_batch1.py'],
    mixed=['configs/_base_/settings/digits-c_mixed.py'])
# --family: the source model, with its committed checkpoint (configs/digits_c/*_train.py
# trained them); gn is the configs' own
families = dict(
    gn=dict(label='SmallConvNet (GroupNorm)', overlays=[]),
    bn=dict(label='SmallConvNet (BatchNorm)',
            overlays=['configs/_base_/families/digits-c_bn.py']),
    ln=dict(label='SmallConvNet (LayerNorm)',
            overlays=['configs/_base_/families/digits-c_ln.py']),
    vit=dict(label='a small ViT (LayerNorm)',
             overlays=['configs/_base_/families/digits-c_vit.py']))
seeds = [0, 1, 2]
work_dir = '{setting}/{name}/seed{seed}'
out = 'work_dirs/demo_cls'
cfg_options = {
    'test_cfg.progress': False,
    'test_cfg.checkpoint_interval': 0,
    'log_level': 'WARNING',
}
requires = [
    dict(path='data/digits_c', make='make demo-cls-data'),
    dict(path='data/digits/train', make='make demo-cls-data'),
]
# table.json records these values of the runs' configs
record = dict(
    severity=dict(key='test_dataloader.dataset.datasets.0.severity'),
    batch1_images=dict(key='test_dataloader.dataset.datasets.0.num_images', setting='batch1'))
caption = ('Error (%, lower is better) of {model} on Digits-C (severity {severity}), mean over '
           'the 15 corruptions and over seeds {seeds} (± standard error over seeds); '
           '(+x.xx) is the change STAG makes; images/s in the first setting, mean over seeds.')
