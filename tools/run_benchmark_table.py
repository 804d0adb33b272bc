"""Every method, with and without STAG, on the embedded benchmark: one table anyone can rerun.

    python tools/run_benchmark_table.py [--rounds 3] [--methods tent eata ...] [--reuse]
                                        [--out work_dirs/benchmark_table]

Each run is ``tools/test_tta.py configs/demo/segformer-mit-b0_<run>.py`` in its own process
(its log beside its results). The table (markdown and JSON) gives the mean mIoU per round and
overall, the change STAG makes, and images/s; ``comparison.{md,csv,png}`` beside it hold every
run per (round, domain) and along the stream (``tools/compare_results.py``'s layout).
``--reuse`` keeps results already in ``--out`` (to resume an interrupted table).
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

from stag_seg.evaluation import compare_csv, compare_markdown, plot_results

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: (row name, demo config suffix without STAG, with STAG or None)
RUNS = [
    ('Source', 'source', None),
    ('Norm (BN adapt)', 'norm', None),
    ('Tent (entropy)', 'tent', 'tent_stag'),
    ('Tent (pseudo-label)', 'tent-pl', 'tent-pl_stag'),
    ('EATA (with Fisher)', 'eata_fisher', 'eata_stag_fisher'),
    ('SAR', 'sar', 'sar_stag'),
    ('DeYO', 'deyo', 'deyo_stag'),
    ('CoTTA', 'cotta', 'cotta_stag'),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='all methods +- STAG on the embedded benchmark')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--methods', nargs='+', help='config suffixes to run (default: all)')
    parser.add_argument('--reuse', action='store_true', help='keep results already present')
    parser.add_argument('--out', default='work_dirs/benchmark_table')
    return parser.parse_args()


def run(name: str, args: argparse.Namespace) -> dict:
    work_dir = osp.join(args.out, name)
    result = osp.join(work_dir, 'tta_results.json')
    if not (args.reuse and osp.isfile(result)):
        os.makedirs(work_dir, exist_ok=True)
        cmd = [sys.executable, 'tools/test_tta.py', f'configs/demo/segformer-mit-b0_{name}.py',
               '--work-dir', work_dir, '--cfg-options', f'test_cfg.rounds={args.rounds}',
               'test_cfg.progress=False']
        start = time.time()
        with open(osp.join(work_dir, 'run.log'), 'w') as log:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode:
            raise SystemExit(f'{name} failed; see {osp.join(work_dir, "run.log")}')
        print(f'{name}: {time.time() - start:.0f} s', flush=True)
    with open(result) as f:
        return json.load(f)


def per_round(doc: dict) -> list[float]:
    return [sum(r['mIoU'] for r in doc['records'] if r['round'] == k)
            / sum(1 for r in doc['records'] if r['round'] == k)
            for k in range(1, doc['rounds'] + 1)]


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)
    if not osp.isdir('data/synthetic_acdc'):
        raise SystemExit('no data/synthetic_acdc: run `make demo-data` first')
    rows = []
    for label, plain, stag in RUNS:
        if args.methods and plain not in args.methods:
            continue
        row = dict(method=label, config=plain, plain=run(plain, args))
        if stag:
            row['stag'] = run(stag, args)
        rows.append(row)
    rounds = ' | '.join(f'r{k}' for k in range(1, args.rounds + 1))
    lines = [f'| method | {rounds} | mean | + STAG: {rounds} | mean | STAG change | images/s '
             '| + STAG images/s |',
             '|---|' + '---:|' * (2 * args.rounds + 5)]
    summary = []
    for row in rows:
        plain, stag = row['plain'], row.get('stag')
        cells = [f'{v:.2f}' for v in per_round(plain)] + [f'**{plain["mean"]:.2f}**']
        if stag:
            cells += [f'{v:.2f}' for v in per_round(stag)] + [
                f'**{stag["mean"]:.2f}**', f'{stag["mean"] - plain["mean"]:+.2f}']
        else:
            cells += [''] * (args.rounds + 2)
        cells += [f'{plain["images_per_s"]:.2f}',
                  f'{stag["images_per_s"]:.2f}' if stag else '']
        lines.append(f'| {row["method"]} | ' + ' | '.join(cells) + ' |')
        summary.append(dict(method=row['method'], config=row['config'], mean=plain['mean'],
                            per_round=per_round(plain), images_per_s=plain['images_per_s'],
                            stag_mean=stag['mean'] if stag else None,
                            stag_per_round=per_round(stag) if stag else None,
                            stag_images_per_s=stag['images_per_s'] if stag else None))
    table = '\n'.join(lines)
    print(table)
    with open(osp.join(args.out, 'table.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.out, 'table.json'), 'w') as f:
        json.dump(dict(rounds=args.rounds, rows=summary), f, indent=2)
    print(f'written: {osp.join(args.out, "table.md")}, {osp.join(args.out, "table.json")}')
    # every run per (round, domain), best in bold, and the figure along the stream
    docs = [doc for row in rows for doc in (row['plain'], row.get('stag')) if doc]
    with open(osp.join(args.out, 'comparison.md'), 'w') as f:
        f.write(compare_markdown(docs) + '\n')
    compare_csv(docs, osp.join(args.out, 'comparison.csv'))
    plot_results(docs, osp.join(args.out, 'comparison.png'))
    print(f'written: comparison.{{md,csv,png}} in {args.out}')


if __name__ == '__main__':
    main()
