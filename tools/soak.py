"""Soak test: a long continual stream, watched for memory growth, NaN steps and skips.

    python tools/soak.py [--rounds 20] [--per-domain 25] [--runs tent_stag cotta_stag]
                         [--out work_dirs/soak]

Each run is ``configs/demo/segformer-mit-b0_<run>.py`` on the embedded benchmark, the first
``--per-domain`` images of every condition, ``--rounds`` rounds, in its own process. After every
round the process records its resident memory (RSS); data loads in that process too
(``num_workers=0``), so its RSS is the whole run's. The report (printed, and ``soak.json`` /
``soak.md`` in ``--out``) gives per round the mean mIoU, the RSS, and the steps that were not
finite or skipped, then the RSS growth from round 2 to the last (round 1 includes warm-up
allocations). Bad input is skipped and counted (``on_bad_input='skip'``), so a NaN step shows
in the report instead of stopping the run.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='long-stream soak test')
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--per-domain', type=int, default=25,
                        help='images per condition (the first N)')
    parser.add_argument('--runs', nargs='+', default=['tent_stag', 'cotta_stag'],
                        help='demo config suffixes')
    parser.add_argument('--out', default='work_dirs/soak')
    parser.add_argument('--one', help=argparse.SUPPRESS)  # internal: run one config here
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error('--rounds must be >= 2 (growth is measured from round 2)')
    if args.per_domain < 1:
        parser.error('--per-domain must be >= 1')
    return args


def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError as err:
        raise SystemExit(f'soak.py reads resident memory from /proc/self/statm: {err}')


def run_one(name: str, args: argparse.Namespace) -> None:
    """Run one config in this process, recording RSS at the end of every round."""
    import gc

    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS
    from mmengine.runner import Runner

    import stag_seg  # noqa: F401

    @HOOKS.register_module(force=True)
    class SoakProbe(Hook):
        """Resident memory at the end of each round."""

        def __init__(self):
            self.rss: dict[int, int] = {}
            self.round = 0

        def _close(self):
            if self.round:
                gc.collect()
                self.rss[self.round] = resident_bytes()

        def before_test_iter(self, runner, batch_idx, data_batch=None):
            loop = runner.test_loop
            if loop.round_idx != self.round:
                self._close()
                self.round = loop.round_idx

        def after_test(self, runner):
            self._close()

    work_dir = osp.join(args.out, name)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo', f'segformer-mit-b0_{name}.py'))
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.test_dataloader.dataset.indices = args.per_domain
    cfg.test_dataloader.num_workers = 0  # one process: its RSS is the whole run's memory
    cfg.test_dataloader.persistent_workers = False
    cfg.test_cfg.update(rounds=args.rounds, progress=False, on_bad_input='skip')
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='SoakProbe')]
    runner = Runner.from_cfg(cfg)
    runner.test()
    probe = next(h for h in runner.hooks if type(h).__name__ == 'SoakProbe')
    with open(osp.join(work_dir, 'tta_results.json')) as f:
        doc = json.load(f)
    rounds = []
    for r in range(1, args.rounds + 1):
        recs = [rec for rec in doc['records'] if rec['round'] == r]
        rounds.append(dict(
            round=r, mIoU=sum(rec['mIoU'] for rec in recs) / len(recs),
            rss_mb=probe.rss[r] / 2**20,
            nonfinite_steps=sum(rec.get('nonfinite_steps', 0) for rec in recs),
            skipped=sum(rec.get('bad_inputs', 0) for rec in recs),
            guard_resets=sum(rec.get('guard_resets', 0) for rec in recs)))
    with open(osp.join(work_dir, 'soak.json'), 'w') as f:
        json.dump(dict(run=name, method=doc['method'], regularizers=doc['regularizers'],
                       images_per_s=doc['images_per_s'], rounds=rounds), f, indent=2)


def soak_markdown(document: dict) -> str:
    """The tables of ``soak.md``, from the document ``soak.json`` holds: per run and round the
    mIoU, the RSS, and the steps that were not finite, skipped or reset."""
    lines = []
    for run in document['runs']:
        rows = run['rounds']
        growth = run['rss_growth_pct_from_round_2']
        label = '+'.join([run['method'], *run['regularizers']])
        lines += [f'**{label}** ({run["images_per_s"]:.2f} images/s)', '',
                  '| round | mIoU | RSS (MB) | NaN steps | skipped | guard resets |',
                  '|---:|---:|---:|---:|---:|---:|']
        lines += [f'| {r["round"]} | {r["mIoU"]:.2f} | {r["rss_mb"]:.1f} | '
                  f'{r["nonfinite_steps"]} | {r["skipped"]} | {r["guard_resets"]} |'
                  for r in rows]
        lines += ['', f'RSS growth from round 2 to round {len(rows)}: {growth:+.2f} %; NaN '
                  f'steps: {sum(r["nonfinite_steps"] for r in rows)}; skipped: '
                  f'{sum(r["skipped"] for r in rows)}', '']
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)
    if args.one:
        run_one(args.one, args)
        return
    if not osp.isdir('data/synthetic_acdc'):
        raise SystemExit('no data/synthetic_acdc: run `make demo-data` first')
    report = []
    for name in args.runs:
        os.makedirs(osp.join(args.out, name), exist_ok=True)
        cmd = [sys.executable, 'tools/soak.py', '--one', name, '--rounds', str(args.rounds),
               '--per-domain', str(args.per_domain), '--out', args.out]
        with open(osp.join(args.out, name, 'soak.log'), 'w') as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode:
            raise SystemExit(f'{name} failed; see {osp.join(args.out, name, "soak.log")}')
        with open(osp.join(args.out, name, 'soak.json')) as f:
            report.append(json.load(f))
    for run in report:
        rows = run['rounds']
        run['rss_growth_pct_from_round_2'] = \
            (rows[-1]['rss_mb'] - rows[1]['rss_mb']) / rows[1]['rss_mb'] * 100
    document = dict(rounds=args.rounds, per_domain=args.per_domain, runs=report)
    text = soak_markdown(document)
    print(text)
    with open(osp.join(args.out, 'soak.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out, 'soak.json'), 'w') as f:
        json.dump(document, f, indent=2)
    print(f'written: {osp.join(args.out, "soak.md")}, {osp.join(args.out, "soak.json")}')


if __name__ == '__main__':
    main()
