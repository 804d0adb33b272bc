"""Run a benchmark suite: every row (a method without and with STAG) in every setting, model
family and seed, and write its table.

    python tools/run_suite.py SUITE [--settings S ...] [--methods M ...] [--seeds K ...]
                                  [--family F] [--with ROW ...] [--reuse] [--out DIR]
                                  [--from-table TABLE_JSON] [--jobs N]
                                  [--cfg-options KEY=VALUE ...]

SUITE is a suite config: ``configs/suites/digits-c.py`` (Digits-C, four settings, three
seeds: ``table.{md,json}``) or ``configs/suites/demo.py`` (the segmentation demo, 3 rounds:
``table.{md,json}`` and ``comparison.{md,csv,png}``). Every run goes through MMEngine's runner
in this process (``--jobs N``: N at a time, in worker processes), its results in
``<out>/<the suite's work_dir>``. Paths are taken from the repository root. ``--from-table``
takes the runs of a table this suite made before (``results/suites/demo/table.json``) instead
of running them again, so that new rows join a committed table:

    python tools/run_suite.py configs/suites/demo.py --jobs 2 \
        --from-table results/suites/demo/table.json --out work_dirs/demo_table
``stag_seg.suites`` describes the suite's keys.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='run a benchmark suite and write its table')
    parser.add_argument('suite', help='suite config, e.g. configs/suites/digits-c.py')
    parser.add_argument('--settings', nargs='+', help='settings to run (default: all)')
    parser.add_argument('--methods', nargs='+',
                        help='rows to run, by the name of their config without STAG, e.g. '
                        'tent eata_fisher (default: all)')
    parser.add_argument('--seeds', nargs='+', type=int,
                        help='seeds (default: the suite\'s); each sets randomness.seed, and '
                        'with it the stream order')
    parser.add_argument('--family', help='the source model family, e.g. bn, ln or vit for '
                        'Digits-C (default: the suite\'s first)')
    parser.add_argument('--with', dest='extra', nargs='+', default=[],
                        help='add the suite\'s optional rows, e.g. logit (Tent + STAG in the '
                        'logit reading, lambda 4, on Digits-C)')
    parser.add_argument('--reuse', action='store_true',
                        help='keep results already in --out (resume an interrupted table)')
    parser.add_argument('--out', help='output folder (default: the suite\'s out)')
    parser.add_argument('--from-table', metavar='TABLE_JSON',
                        help='a table.json this suite made with the same options: its runs '
                        'are taken from it, not run again (a rounds table gains new rows)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at once, each in its own process with cores/jobs torch '
                        'threads (default: 1, every run in this process)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override keys of every run\'s config, after its overlays; keys '
                        'under model.adapt_optim_wrapper, model.tta_method.fisher_data and '
                        'model.tta_method.regularizers.0 (STAG\'s options) apply to the runs '
                        'that have them')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    suite, out = osp.abspath(args.suite), args.out and osp.abspath(args.out)
    os.chdir(ROOT)
    import stag_seg  # noqa: F401  (registers the toolkit before the configs are built)
    from stag_seg import compat
    from stag_seg.suites import SuiteError, run_suite

    compat.prepare_environment()  # as tools/test_tta.py: forks' config paths, safe loading
    try:
        run_suite(suite, out=out, settings=args.settings, methods=args.methods,
                  seeds=args.seeds, family=args.family, extra=args.extra, reuse=args.reuse,
                  from_table=args.from_table and osp.abspath(args.from_table),
                  cfg_options=args.cfg_options, jobs=args.jobs)
    except SuiteError as err:  # the suite or the selection: the message says what to change
        sys.exit(f'run_suite.py: {err}')


if __name__ == '__main__':
    main()
