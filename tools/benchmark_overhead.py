"""What STAG costs per adaptation step: wall time and peak memory against plain Tent.

    python tools/benchmark_overhead.py [--size H W] [--steps N] [--device cpu|cuda|all]
                                       [--out work_dirs/benchmark_overhead.json]

Variants, each on the demo SegFormer (MiT-B0, 19 classes) through the toolkit's own step
(``TTAEncoderDecoder.test_step``):

- ``tent``: Tent (entropy, norm-layer affine parameters, Adam);
- ``tent+stag-gram``: Tent + STAG, Gram form (C-dimensional per pixel);
- ``tent+stag-explicit``: Tent + STAG, explicit form (builds dH/dz, D-dimensional per pixel);
- ``tent+stag-autograd``: Tent + the same loss with dH/dz from autograd (a double backward).

Each variant runs in its own process so CPU peak memory (the growth of the resident set from
before the first step, ``ru_maxrss``) is not shared; on CUDA the allocator's peak is used. The
variants run ``--repeats`` times, interleaved, and each keeps its fastest median (shared
machines are noisy: only ratios measured in one run are compared). Prints a table and writes
JSON; ratios are against ``tent`` in the same run.
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = {
    'tent': [],
    'tent+stag-gram': [dict(type='STAG', form='gram')],
    'tent+stag-explicit': [dict(type='STAG', form='explicit')],
    'tent+stag-autograd': [dict(type='AutogradSTAG')],
}
CHECKPOINT = 'checkpoints/segformer-mit-b0_synthetic-cityscapes.pth'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='per-step cost of STAG against Tent')
    parser.add_argument('--size', nargs=2, type=int, default=[512, 1024], metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--steps', type=int, default=8, help='timed steps per variant')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5, help='interleaved runs per variant')
    parser.add_argument('--device', choices=['cpu', 'cuda', 'all'], default='all')
    parser.add_argument('--out', default='work_dirs/benchmark_overhead.json')
    parser.add_argument('--worker', nargs=2, metavar=('VARIANT', 'DEVICE'), help=argparse.SUPPRESS)
    return parser.parse_args()


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def run_worker(args: argparse.Namespace) -> dict:
    """One variant on one device, in this process; returns its measurements."""
    import torch
    from mmengine.config import Config, ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import stag_seg  # noqa: F401
    from stag_seg.registry import TTA_REGULARIZERS
    from stag_seg.stag import STAG, stag_loss_autograd
    from stag_seg.structures import step_stats

    @TTA_REGULARIZERS.register_module(force=True)
    class AutogradSTAG(STAG):
        """STAG's feature-space loss with dH/dz from autograd instead of the closed form."""

        def __call__(self, logits, weight, bias=None, features=None, mask=None, weights=None):
            anchors = self._anchors_for(weight, bias)
            return self.weight * stag_loss_autograd(features, weight, bias, anchors, mask), {}

    variant, device = args.worker
    init_default_scope('mmseg')
    cfg = Config.fromfile('configs/_base_/models/segformer_mit-b0.py').model
    cfg.tta_method = dict(type='Tent', regularizers=VARIANTS[variant])
    cfg.adapt_optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-5))
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg))
    if osp.isfile(CHECKPOINT):
        from stag_seg.compat import load_checkpoint
        model.load_state_dict(load_checkpoint(CHECKPOINT)['state_dict'])
    model.to(device).eval()
    height, width = args.size
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)

    def batch():
        shape = (height, width)
        return dict(inputs=[torch.randint(0, 256, (3, *shape), generator=gen, dtype=torch.uint8)
                            for _ in range(args.batch_size)],
                    data_samples=[SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape,
                                                              pad_shape=shape))
                                  for _ in range(args.batch_size)])

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    # the memory baseline is taken before the first step, so every variant's peak counts the
    # same things: the source snapshot, the optimizer state and the step's activations
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated() / 2**20
    else:
        base_mem = _rss_mb()
    model.test_step(batch())  # configures the method (snapshot, optimizer) outside the timing
    sync()
    times, cpu_times = [], []
    for i in range(args.warmup + args.steps):
        data = batch()
        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.no_grad():  # as MMEngine's TestLoop calls test_step
            outputs = model.test_step(data)
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated() / 2**20 - base_mem
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_mem
    # process CPU time (all threads) is less sensitive than wall time to other processes
    return dict(variant=variant, device=device, median_s=statistics.median(times),
                mean_s=statistics.fmean(times), min_s=min(times),
                cpu_median_s=statistics.median(cpu_times), peak_mem_mb=peak,
                stats=step_stats(outputs))


def _run_variant(args: argparse.Namespace, variant: str, device: str) -> dict:
    cmd = [sys.executable, __file__, '--worker', variant, device, '--size', *map(str, args.size),
           '--steps', str(args.steps), '--warmup', str(args.warmup), '--batch-size',
           str(args.batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
    if proc.returncode or not lines:
        raise SystemExit(f'{variant} on {device} failed:\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len('RESULT '):])


def main() -> None:
    args = parse_args()
    if args.worker:
        print('RESULT ' + json.dumps(run_worker(args)))
        return
    import torch
    devices = ['cpu', 'cuda'] if args.device == 'all' else [args.device]
    devices = [d for d in devices if d == 'cpu' or torch.cuda.is_available()]
    best: dict[tuple[str, str], dict] = {}
    for device in devices:
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                row = _run_variant(args, variant, device)
                row['repeats'] = best.get((device, variant), {}).get('repeats', []) + [
                    dict(median_s=row['median_s'], cpu_median_s=row['cpu_median_s'],
                         peak_mem_mb=row['peak_mem_mb'])]
                if (device, variant) not in best or row['median_s'] < best[device, variant][
                        'median_s']:
                    best[device, variant] = row
                else:
                    best[device, variant]['repeats'] = row['repeats']
                print(f'{device:4s} {variant:20s} run {repeat + 1}: {row["median_s"] * 1e3:9.1f} '
                      f'ms/step {row["peak_mem_mb"]:9.1f} MB peak', flush=True)
    rows = list(best.values())
    for device in devices:
        ref = next(r for r in rows if r['device'] == device and r['variant'] == 'tent')
        gram = next(r for r in rows if r['device'] == device and r['variant'] == 'tent+stag-gram')
        for row in rows:
            if row['device'] == device:
                row['time_vs_tent'] = row['median_s'] / ref['median_s']
                row['cpu_vs_tent'] = min(r['cpu_median_s'] for r in row['repeats']) / min(
                    r['cpu_median_s'] for r in ref['repeats'])
                row['mem_vs_tent'] = row['peak_mem_mb'] / max(ref['peak_mem_mb'], 1e-9)
                row['time_vs_gram'] = row['median_s'] / gram['median_s']
    print(f'\nH x W = {args.size[0]} x {args.size[1]}, batch {args.batch_size}, '
          f'best of {args.repeats} interleaved runs of the median of {args.steps} steps after '
          f'{args.warmup} warm-up steps\n')
    print('| device | variant | ms/step | x Tent time | x Tent CPU time | peak MB | '
          'x Tent memory |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for r in rows:
        print(f'| {r["device"]} | {r["variant"]} | {r["median_s"] * 1e3:.1f} | '
              f'{r["time_vs_tent"]:.3f} | {r["cpu_vs_tent"]:.3f} | {r["peak_mem_mb"]:.0f} | '
              f'{r["mem_vs_tent"]:.3f} |')
    doc = dict(size=args.size, batch_size=args.batch_size, steps=args.steps,
               warmup=args.warmup, repeats=args.repeats, model='SegFormer MiT-B0, 19 classes',
               host=dict(cpu_count=os.cpu_count(), machine=platform.machine(),
                         torch=torch.__version__,
                         cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
               rows=rows)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(doc, f, indent=2)
    print(f'\nwritten: {args.out}')


if __name__ == '__main__':
    main()
