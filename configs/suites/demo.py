# Every method, with and without STAG, on the embedded segmentation benchmark (the synthetic
# Cityscapes->ACDC stream of configs/demo/, 3 rounds): one table anyone can rerun.
#   python tools/run_suite.py configs/suites/demo.py [--methods tent eata ...] [--reuse]
#       [--out DIR] [--cfg-options test_cfg.rounds=N]
# Each run is configs/demo/segformer-mit-b0_<name>.py through MMEngine's runner, its results
# in <out>/<name>. The table (markdown and JSON) gives the mean mIoU per round and overall,
# the change STAG makes, and images/s; comparison.{md,csv,png} beside it hold every run per
# (round, domain) and along the stream (tools/compare_results.py's layout). Every run keeps its
# config's seed (randomness.seed).
table = 'rounds'
config_path = 'configs/demo/segformer-mit-b0_{}.py'
# the variants are the rows' methods with STAG
variant_label = '+ STAG'
variant_name = 'STAG'
rows = [
    dict(label='Source', plain='source'),
    dict(label='Norm (BN adapt)', plain='norm'),
    dict(label='Tent (entropy)', plain='tent', variant='tent_stag'),
    dict(label='Tent (pseudo-label)', plain='tent-pl', variant='tent-pl_stag'),
    dict(label='EATA (with Fisher)', plain='eata_fisher', variant='eata_stag_fisher'),
    dict(label='SAR', plain='sar', variant='sar_stag'),
    dict(label='DeYO', plain='deyo', variant='deyo_stag'),
    dict(label='CoTTA', plain='cotta', variant='cotta_stag'),
    dict(label='DAT', plain='dat', variant='dat_stag'),
    dict(label='SVDP', plain='svdp', variant='svdp_stag'),
    dict(label='Hybrid-TTA', plain='hybrid-tta', variant='hybrid-tta_stag'),
]
settings = dict(stream=[])  # the stream as the configs define it
work_dir = '{name}'
out = 'work_dirs/benchmark_table'
cfg_options = {'test_cfg.rounds': 3, 'test_cfg.progress': False, 'log_level': 'WARNING'}
requires = [dict(path='data/synthetic_acdc', make='make demo-data')]
