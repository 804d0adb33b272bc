"""Images/s of continual TTA with 1, 2, ... processes (torchrun), on the CPU or on GPUs.

    python tools/benchmark_scaling.py [--nprocs 1 2] [--config CONFIG] [--images N]
                                      [--out work_dirs/benchmark_scaling.json]

Each run adapts on one round of the embedded benchmark's stream (``make demo-data`` writes it)
with one batch per process per step, so N processes take N images per adaptation step. On the
CPU the cores are shared out: each of N processes gets ``cores / N`` threads. The images/s are
the toolkit's own (``tta_results.json``: all images over the stream's wall time, rank 0).
"""
import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='images/s against the number of processes')
    parser.add_argument('--config', default='configs/demo/segformer-mit-b0_tent_stag.py')
    parser.add_argument('--checkpoint',
                        default='checkpoints/segformer-mit-b0_synthetic-cityscapes.pth')
    parser.add_argument('--nprocs', nargs='+', type=int, default=[1, 2])
    parser.add_argument('--domains', nargs='+', default=['fog', 'night', 'rain', 'snow'])
    parser.add_argument('--out', default='work_dirs/benchmark_scaling.json')
    parser.add_argument('--port', type=int, default=29650)
    return parser.parse_args()


def run(args: argparse.Namespace, nproc: int, use_cuda: bool) -> dict:
    work_dir = osp.join(ROOT, 'work_dirs', 'benchmark_scaling', f'nproc{nproc}')
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHON=sys.executable,
               PORT=str(args.port + nproc))
    options = ['--work-dir', work_dir, '--cfg-options', 'test_cfg.rounds=1',
               f'test_cfg.domains=[{",".join(args.domains)}]', 'test_cfg.progress=False',
               'test_dataloader.batch_size=1', 'log_level=WARNING']
    if nproc == 1:
        cmd = [sys.executable, 'tools/test_tta.py', args.config, args.checkpoint, *options]
    else:
        cmd = ['bash', 'tools/dist_test_tta.sh', args.config, args.checkpoint, str(nproc),
               *options]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f'{nproc} process(es) failed:\n{proc.stderr[-3000:]}')
    with open(osp.join(work_dir, 'tta_results.json')) as f:
        doc = json.load(f)
    return dict(nproc=nproc, threads_per_proc=None if use_cuda else threads,
                images=sum(r['num_samples'] for r in doc['records']),
                images_per_s=doc['images_per_s'],
                mIoU=doc['mean'])


def scaling_markdown(doc: dict) -> str:
    """The table of a document this tool wrote: images/s and mIoU per process count."""
    lines = [f'{doc["config"]} on {", ".join(doc["domains"])}, device {doc["device"]} '
             f'({doc["cpu_count"]} CPU cores, {doc["machine"]}, torch {doc["torch"]})', '',
             '| processes | threads per process | images | images/s | speed-up | mIoU |',
             '|---:|---:|---:|---:|---:|---:|']
    for r in doc['rows']:
        lines.append(f'| {r["nproc"]} | {r["threads_per_proc"]} | {r["images"]} | '
                     f'{r["images_per_s"]:.2f} | {r["speedup"]:.2f} | {r["mIoU"]:.2f} |')
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    import torch
    if not osp.isdir(osp.join(ROOT, 'data', 'synthetic_acdc')):
        raise SystemExit('no data/synthetic_acdc: run `make demo-data` first')
    use_cuda = torch.cuda.is_available()
    rows = []
    for nproc in args.nprocs:
        rows.append(run(args, nproc, use_cuda))
        base = rows[0]['images_per_s']
        rows[-1]['speedup'] = rows[-1]['images_per_s'] / base
        print(f'{nproc} process(es): {rows[-1]["images_per_s"]:.2f} images/s '
              f'(x{rows[-1]["speedup"]:.2f}), mIoU {rows[-1]["mIoU"]:.2f}', flush=True)
    doc = dict(config=args.config, domains=args.domains,
               device=torch.cuda.get_device_name(0) if use_cuda else 'cpu',
               cpu_count=os.cpu_count(), machine=platform.machine(), torch=torch.__version__,
               rows=rows)
    table = scaling_markdown(doc)
    print(table)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(doc, f, indent=2)
    with open(osp.splitext(args.out)[0] + '.md', 'w') as f:
        f.write(table + '\n')
    print(f'written: {args.out} and its table beside it (.md)')


if __name__ == '__main__':
    main()
