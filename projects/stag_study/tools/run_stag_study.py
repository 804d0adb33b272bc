"""Run one phase of the pre-registered STAG study (projects/stag_study/README.md, "The study"),
from the repository's root, STUDY being projects/stag_study/configs/stag-study.py:

    python projects/stag_study/tools/run_stag_study.py STUDY benchmark [--out DIR]
    python projects/stag_study/tools/run_stag_study.py STUDY readings
    python projects/stag_study/tools/run_stag_study.py STUDY held_out
    python projects/stag_study/tools/run_stag_study.py STUDY table
    python projects/stag_study/tools/run_stag_study.py STUDY readings2   # the second study, dev
    python projects/stag_study/tools/run_stag_study.py STUDY held_out2   # the second study, once

Each phase reads what the one before chose from ``<out>/<phase>.json``, runs (or reads back)
its runs under ``<out>/<phase>/`` and writes its summary: ``benchmark.json`` (the checks of
each candidate and the chosen one), ``readings.json`` (the rule on every dev cell and the
default), ``held_out.json`` (the default's changes, reported as they come out); ``table``
writes ``table.md``, the "Where STAG helps" table of the dev and held-out runs. The second study
(the README's section of that name) writes ``readings2.json`` (its rule on every dev cell and
the candidate chosen) and ``held_out2.json`` (that candidate on held-out, as it comes out), each
with its table as ``.md`` beside it.
Paths are relative to the repository root.
"""
import argparse
import os
import os.path as osp
import sys

#: The project (its ``stag_study`` package) and the repository (the configs' paths start there).
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(osp.dirname(PROJECT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='one phase of the STAG study')
    parser.add_argument('study', help='the study config, e.g. '
                        'projects/stag_study/configs/stag-study.py')
    parser.add_argument('phase', choices=['benchmark', 'readings', 'held_out', 'table',
                                          'readings2', 'held_out2'])
    parser.add_argument('--out', help="the study's folder (default: the config's out)")
    parser.add_argument('--shard', default='0/1', metavar='K/N',
                        help='run only every N-th run from the K-th (several processes share a '
                             'phase); the summary is written once every run has its results')
    return parser.parse_args()


def _read(out: str, name: str) -> dict:
    import json
    path = osp.join(out, f'{name}.json')
    if not osp.isfile(path):
        sys.exit(f'{path} not found: run the {name} phase first')
    with open(path) as f:
        return json.load(f)


def _shard(text: str) -> tuple[int, int]:
    try:
        shard, shards = (int(v) for v in text.split('/'))
        assert 0 <= shard < shards
    except (ValueError, AssertionError):
        sys.exit(f'--shard takes K/N with 0 <= K < N, got {text!r}')
    return shard, shards


def _missing(runs, out: str, phase: str) -> bool:
    missing = [r.key for r in runs
               if not osp.isfile(osp.join(out, phase, r.key, 'tta_results.json'))]
    if missing:
        print(f'{len(missing)} runs of the phase have no results yet (other shards?); '
              'the summary is written by the run that finds them all')
    return bool(missing)


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, PROJECT)
    from mmengine.config import Config

    import stag_seg  # noqa: F401  (registers the toolkit before the configs are built)
    from stag_study.study import (benchmark_checks, plan_phase, plan_phase2,
                                  plan_segmentation2, reading_rule, rule2, rule2_table,
                                  rule_table, run_phase, run_segmentation, segmentation_summary,
                                  segmentation_table, study_table, write_summary)

    study = Config.fromfile(args.study)
    suite = Config.fromfile(study.suite)
    out = args.out or study.out
    if args.phase == 'table':
        table = study_table(study, out, _read(out, 'readings')['default'])
        with open(osp.join(out, 'table.md'), 'w') as f:
            f.write(table)
        print(table + '\nwritten: ' + osp.join(out, 'table.md'))
        return
    if args.phase in ('readings2', 'held_out2'):
        chosen = _read(out, 'readings2')['default'] if args.phase == 'held_out2' else None
        runs = plan_phase2(study, suite, args.phase, study.phase2.benchmark, chosen)
        seg_runs = plan_segmentation2(study, chosen) if args.phase == 'held_out2' else []
        print(f'{args.phase}: {len(runs)} runs' + (f' and {len(seg_runs)} segmentation runs'
                                                   if seg_runs else ''), flush=True)
        shard, shards = _shard(args.shard)
        run_phase(runs[shard::shards], osp.join(out, args.phase))
        run_segmentation(seg_runs[shard::shards], osp.join(out, args.phase))
        if _missing(runs + seg_runs, out, args.phase):
            return
        errors = run_phase(runs, osp.join(out, args.phase), log=lambda _: None)
        split = 'dev' if args.phase == 'readings2' else 'held_out'
        summary = rule2(study, errors, split)
        summary['errors'] = errors
        table = rule2_table(summary)
        if args.phase == 'readings2':
            how = ('qualifies' if summary['qualified']
                   else 'none qualifies: the smallest worst case')
            table += f'\n\nchosen: `{summary["default"]}` ({how})\n'
        else:
            docs = run_segmentation(seg_runs, osp.join(out, args.phase), log=lambda _: None)
            summary['segmentation'] = segmentation_summary(docs, chosen)
            table += f'\n\n{segmentation_table(summary["segmentation"])}\n'
        print(f'\n{table}')
        with open(osp.join(out, f'{args.phase}.md'), 'w') as f:
            f.write(table)
        print('written: ' + write_summary(out, args.phase, summary) + ', '
              + osp.join(out, f'{args.phase}.md'))
        return
    candidate = default = None
    if args.phase != 'benchmark':
        candidate = _read(out, 'benchmark')['chosen']
    if args.phase == 'held_out':
        chosen = _read(out, 'readings')['default']
        reading, weight = chosen.rsplit('-', 1)
        default = (reading, float(weight))
    runs = plan_phase(study, suite, args.phase, candidate, default)
    print(f'{args.phase}: {len(runs)} runs' + (f', benchmark candidate {candidate}'
                                               if candidate else ''), flush=True)
    shard, shards = _shard(args.shard)
    run_phase(runs[shard::shards], osp.join(out, args.phase))
    if _missing(runs, out, args.phase):
        return
    errors = run_phase(runs, osp.join(out, args.phase), log=lambda _: None)
    if args.phase == 'benchmark':
        summary = benchmark_checks(study, errors)
        for name, res in summary['candidates'].items():
            print(f'\n{name} {dict(study.candidates[name])}: {res["passed"]} checks passed')
            for check in res['checks']:
                print(f'  {"pass" if check["passed"] else "FAIL"}  {check["check"]}: ' + ', '.join(
                    f'{k}={v:.2f}' for k, v in check.items() if isinstance(v, float)))
                for setting, w in check.get('settings', {}).items():
                    print(f'        {setting}: Tent {w["tent_change"]:+.2f} ± {w["tent_se"]:.2f}, '
                          f'SAR {w["sar_change"]:+.2f} ± {w["sar_se"]:.2f}')
        print(f'\nchosen: {summary["chosen"]}')
    else:
        split = 'dev' if args.phase == 'readings' else 'held_out'
        summary = reading_rule(study, errors, split)
        for label, res in summary['candidates'].items():
            harmed = [c for c, s in res['cells'].items() if s['harmful'] or s['too_spread']]
            print(f'{label:20s} mean change {res["mean_change"]:+.2f}  '
                  f'{"qualifies" if res["qualifies"] else "fails: " + ", ".join(harmed)}')
        print(f'\ndefault: {summary["default"]} '
              f'({"qualifies" if summary["qualified"] else "no candidate qualifies"})')
        print('\nchange against the base (error points, mean over seeds ± SE; ! harmful beyond '
              'noise, ~ spread above the limit)\n')
        print(rule_table(summary))
    summary['errors'] = errors
    print('written:', write_summary(out, args.phase, summary))


if __name__ == '__main__':
    main()
