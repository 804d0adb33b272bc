# The embedded segmentation benchmark as a long-horizon stream: the suite of demo.py over 10
# rounds (fog -> night -> rain -> snow ten times, 4,000 images), the length of the CoTTA
# protocol on ACDC. Not part of make demo; a run takes 10/3 of its demo.py time.
#   python tools/run_suite.py configs/suites/demo-long.py [--methods source tent ...]
#       [--reuse] [--out DIR]
_base_ = ['./demo.py']
out = 'work_dirs/benchmark_long'
cfg_options = {'test_cfg.rounds': 10}
