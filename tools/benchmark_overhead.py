"""What STAG costs per adaptation step: wall time and peak memory against plain Tent.

    python tools/benchmark_overhead.py [--sizes 128x256 512x1024] [--variants tent ...]
                                       [--steps N] [--device cpu|cuda|all]
                                       [--out work_dirs/benchmark_overhead.json]

Variants, each on the demo SegFormer (MiT-B0, 19 classes) through the toolkit's own step
(``TTAEncoderDecoder.test_step``):

- ``tent``: Tent (entropy, norm-layer affine parameters, Adam);
- ``tent+stag-gram``: Tent + STAG, Gram form (C-dimensional per pixel);
- ``tent+stag-explicit``: Tent + STAG, explicit form (builds dH/dz, D-dimensional per pixel);
- ``tent+stag-autograd``: Tent + the same loss with dH/dz from autograd (a double backward).

Each variant runs in its own process so CPU peak memory (the growth of the resident set from
before the first step, ``ru_maxrss``) is not shared; on CUDA the allocator's peak is used. The
variants and the sizes (by default the demo's 128x256 and 512x1024) run ``--repeats`` times,
interleaved, and each keeps its fastest median (shared machines are noisy: only ratios measured
in one run are compared); the paired ratio is the median over the repeats of each run's ratio to
the Tent run beside it. Then, for the time ratios that matter, every variant is built in one
process and the variants take steps in turn (``--interleaved-steps`` each): separate processes
differ by more than STAG costs at small sizes. Prints a table and writes JSON; ratios are
against ``tent`` at the same size in the same run.
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
    'tent+stag-gram': [dict(type='STAG', mode='loss', form='gram')],
    'tent+stag-explicit': [dict(type='STAG', mode='loss', form='explicit')],
    'tent+stag-autograd': [dict(type='AutogradSTAG', mode='loss')],
}
CHECKPOINT = 'checkpoints/segformer-mit-b0_synthetic-cityscapes.pth'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='per-step cost of STAG against Tent')
    parser.add_argument('--sizes', nargs='+', default=['128x256', '512x1024'], metavar='HxW',
                        help='input sizes, interleaved with the variants in every repeat')
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--steps', type=int, default=8, help='timed steps per variant')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5, help='interleaved runs per variant')
    parser.add_argument('--device', choices=['cpu', 'cuda', 'all'], default='all')
    parser.add_argument('--out', default='work_dirs/benchmark_overhead.json')
    parser.add_argument('--interleaved-steps', type=int, default=30,
                        help='steps per variant of the one-process interleaved timing')
    parser.add_argument('--worker', nargs=2, metavar=('VARIANT', 'DEVICE'), help=argparse.SUPPRESS)
    parser.add_argument('--interleaved', metavar='DEVICE', help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        args.sizes = [tuple(int(v) for v in size.lower().split('x')) for size in args.sizes]
    except ValueError:
        parser.error(f'--sizes takes HxW values such as 128x256, got {args.sizes}')
    if any(len(size) != 2 or min(size) < 32 for size in args.sizes):
        parser.error(f'--sizes takes HxW values of at least 32x32, got {args.sizes}')
    return args


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _build(variant: str, device: str):
    """The demo SegFormer adapted by Tent with the variant's regularizers, on ``device``."""
    import torch
    from mmengine.config import Config, ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import stag_seg  # noqa: F401
    from stag_seg.registry import TTA_REGULARIZERS
    from stag_seg.stag import STAG

    # the tests' autograd oracle is the naive baseline whose cost STAG's closed form avoids
    sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tests'))
    from stag_reference import stag_loss_autograd

    if 'AutogradSTAG' not in TTA_REGULARIZERS:
        @TTA_REGULARIZERS.register_module()
        class AutogradSTAG(STAG):
            """STAG's feature-space loss, unweighted, with dH/dz from autograd instead of the
            closed form (its cost: the double backward)."""

            def __call__(self, logits, weight, bias=None, features=None, mask=None,
                         weights=None):
                anchors = self._anchors_for(weight, bias)
                return self.weight * stag_loss_autograd(features, weight, bias, anchors,
                                                        mask), {}

    init_default_scope('mmseg')
    cfg = Config.fromfile('configs/_base_/models/segformer_mit-b0.py').model
    cfg.tta_method = dict(type='Tent', regularizers=VARIANTS[variant])
    cfg.adapt_optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-5))
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg))
    if osp.isfile(CHECKPOINT):
        from stag_seg.compat import load_checkpoint
        model.load_state_dict(load_checkpoint(CHECKPOINT)['state_dict'])
    return model.to(device).eval()


def _batch_fn(size: tuple, batch_size: int):
    import torch
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)

    def batch():
        return dict(inputs=[torch.randint(0, 256, (3, *size), generator=gen, dtype=torch.uint8)
                            for _ in range(batch_size)],
                    data_samples=[SegDataSample(metainfo=dict(ori_shape=size, img_shape=size,
                                                              pad_shape=size))
                                  for _ in range(batch_size)])
    return batch


def run_interleaved(args: argparse.Namespace) -> dict:
    """Every variant in this one process, one step each in turn: the time ratios.

    Separate processes differ by more than STAG costs at small sizes (the memory layout, the
    machine's state of the moment); steps taken in turn in one process share all of it.
    """
    import torch
    device = args.interleaved
    size = tuple(args.sizes[0])
    batch = _batch_fn(size, args.batch_size)
    models = {v: _build(v, device) for v in args.variants}
    for model in models.values():  # configure (snapshot, optimizer), then warm up
        for _ in range(1 + args.warmup):
            with torch.no_grad():
                model.test_step(batch())
    times = {v: [] for v in models}
    for _ in range(args.interleaved_steps):
        for variant, model in models.items():
            data = batch()
            if device == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.no_grad():
                model.test_step(data)
            if device == 'cuda':
                torch.cuda.synchronize()
            times[variant].append(time.perf_counter() - start)
    ref = times['tent']
    return {v: dict(median_s=statistics.median(t),
                    ratio=statistics.median(t) / statistics.median(ref),
                    paired_ratio=statistics.median(a / b for a, b in zip(t, ref)))
            for v, t in times.items()}


def run_worker(args: argparse.Namespace) -> dict:
    """One variant on one device, in this process: its time and peak memory."""
    import torch

    from stag_seg.structures import step_stats

    variant, device = args.worker
    model = _build(variant, device)
    batch = _batch_fn(tuple(args.sizes[0]), args.batch_size)

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


def _run_variant(args: argparse.Namespace, variant: str, device: str, size: tuple) -> dict:
    cmd = [sys.executable, __file__, '--worker', variant, device, '--sizes', f'{size[0]}x{size[1]}',
           '--steps', str(args.steps), '--warmup', str(args.warmup), '--batch-size',
           str(args.batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
    if proc.returncode or not lines:
        raise SystemExit(f'{variant} on {device} failed:\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len('RESULT '):])


def overhead_markdown(doc: dict) -> str:
    """The table of a document this tool wrote: per device, size and variant, the time ratios
    to Tent (one process, interleaved; and separate runs), ms/step and peak memory."""
    lines = [f'batch {doc["batch_size"]}, best of {doc["repeats"]} runs of the median of '
             f'{doc["steps"]} steps after {doc["warmup"]} warm-up steps; "paired" is the median '
             'ratio to the Tent step (one process) or run (separate runs) beside it', '',
             '| device | H x W | variant | x Tent, one process | paired, one process | ms/step | '
             'x Tent time | paired x Tent | x Tent CPU time | peak MB | x Tent memory |',
             '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in doc['rows']:
        lines.append(f'| {r["device"]} | {r["size"][0]}x{r["size"][1]} | {r["variant"]} | '
                     f'{r["interleaved"]["ratio"]:.3f} | {r["interleaved"]["paired_ratio"]:.3f} | '
                     f'{r["median_s"] * 1e3:.1f} | {r["time_vs_tent"]:.3f} | '
                     f'{r["paired_time_vs_tent"]:.3f} | {r["cpu_vs_tent"]:.3f} | '
                     f'{r["peak_mem_mb"]:.0f} | {r["mem_vs_tent"]:.3f} |')
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    if args.worker:
        print('RESULT ' + json.dumps(run_worker(args)))
        return
    if args.interleaved:
        print('RESULT ' + json.dumps(run_interleaved(args)))
        return
    import torch
    devices = ['cpu', 'cuda'] if args.device == 'all' else [args.device]
    devices = [d for d in devices if d == 'cpu' or torch.cuda.is_available()]
    if 'tent' not in args.variants:
        raise SystemExit('--variants must include tent: every ratio is against it')
    best: dict[tuple, dict] = {}
    for device in devices:
        for repeat in range(args.repeats):
            for size in args.sizes:
                for variant in args.variants:
                    key = (device, tuple(size), variant)
                    row = _run_variant(args, variant, device, size)
                    row['size'] = list(size)
                    row['repeats'] = best.get(key, {}).get('repeats', []) + [
                        dict(median_s=row['median_s'], cpu_median_s=row['cpu_median_s'],
                             peak_mem_mb=row['peak_mem_mb'])]
                    if key not in best or row['median_s'] < best[key]['median_s']:
                        best[key] = row
                    else:
                        best[key]['repeats'] = row['repeats']
                    print(f'{device:4s} {size[0]}x{size[1]:<5d} {variant:20s} run {repeat + 1}: '
                          f'{row["median_s"] * 1e3:9.1f} ms/step {row["peak_mem_mb"]:9.1f} MB peak',
                          flush=True)
    for device in devices:
        for size in args.sizes:
            cmd = [sys.executable, __file__, '--interleaved', device, '--sizes',
                   f'{size[0]}x{size[1]}', '--warmup', str(args.warmup), '--batch-size',
                   str(args.batch_size), '--interleaved-steps', str(args.interleaved_steps),
                   '--variants', *args.variants]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
            if proc.returncode or not lines:
                raise SystemExit(f'interleaved timing on {device} failed:\n{proc.stderr[-3000:]}')
            for variant, res in json.loads(lines[-1][len('RESULT '):]).items():
                best[device, tuple(size), variant]['interleaved'] = res
            print(f'{device:4s} {size[0]}x{size[1]:<5d} interleaved in one process: ' + ', '.join(
                f'{v} {r["ratio"]:.3f}' for v, r in json.loads(lines[-1][7:]).items()), flush=True)
    rows = list(best.values())
    for (device, size, variant), row in best.items():
        ref = best[device, size, 'tent']
        row['time_vs_tent'] = row['median_s'] / ref['median_s']
        row['cpu_vs_tent'] = min(r['cpu_median_s'] for r in row['repeats']) / min(
            r['cpu_median_s'] for r in ref['repeats'])
        row['mem_vs_tent'] = row['peak_mem_mb'] / max(ref['peak_mem_mb'], 1e-9)
        # the ratio of each repeat's pair, which shares the machine's state of the moment
        row['paired_time_vs_tent'] = statistics.median(
            r['median_s'] / t['median_s'] for r, t in zip(row['repeats'], ref['repeats']))
    doc = dict(sizes=[list(s) for s in args.sizes], batch_size=args.batch_size, steps=args.steps,
               warmup=args.warmup, repeats=args.repeats, model='SegFormer MiT-B0, 19 classes',
               host=dict(cpu_count=os.cpu_count(), machine=platform.machine(),
                         torch=torch.__version__,
                         cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
               rows=rows)
    table = overhead_markdown(doc)
    print('\n' + table)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(doc, f, indent=2)
    with open(osp.splitext(args.out)[0] + '.md', 'w') as f:
        f.write(table + '\n')
    print(f'\nwritten: {args.out} and its table beside it (.md)')


if __name__ == '__main__':
    main()
