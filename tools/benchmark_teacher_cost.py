"""What the multi-view methods cost at the real protocol size: seconds per image and peak memory.

    python tools/benchmark_teacher_cost.py [--config configs/acdc/segformer-b5_source.py]
        [--size 1080x1920] [--input 540x960] [--images 2]
        [--methods cotta dat svdp hybrid-tta]
        [--views-per-forward 1 2 4 6 12] [--device cpu|cuda] [--budget-gb 24]
        [--out work_dirs/benchmark_teacher_cost.json]

Two parts, on the config's model with random weights (nothing is downloaded), an original image
of ``--size`` resized to ``--input`` as the ACDC pipeline does, and the config's slide inference
(or ``--crop``/``--stride``):

- **methods**: CoTTA, DAT and SVDP (each with its ``configs/_base_/tta/*_original-views.py``:
  14 views from the original image, slide inference, everything at the original size) adapt on
  ``--warmup`` untimed images (the first configures the method: teacher and anchor copies),
  then ``--images`` timed ones; seconds per image (median) and peak memory (teacher and anchor
  copies included); and Hybrid-TTA (``configs/_base_/tta/hybrid-tta.py``: one teacher
  inference, one masked student forward with its reconstruction), whose input is ``--input``
  with each side rounded up to a multiple of 32 and stretched to it, as its ACDC config resizes
  to 960x544;
- **teacher**: the 14-view teacher alone (:class:`~stag_seg.methods.views.ScaleFlipViews`) with
  each ``--views-per-forward`` (1 is the reference's loop, one slide window per forward; larger
  values batch windows of one size): seconds per image, peak memory, and the largest difference
  of its averaged probabilities from those of the smallest value given (1: the loop's), and
  whether the labels are identical. The ceiling is the largest value whose peak stays under
  ``--budget-gb``.

Every measurement runs in its own process, so that peak memory is not shared: on the CPU the
growth of the resident set (``ru_maxrss``) from before the first step; on CUDA the allocator's
peak. Activations dominate both, and they do not depend on the device. A measurement that
fails (on the CPU, a value of ``--views-per-forward`` the kernel kills for memory) is recorded
as a row with its ``error``, and the others go on. Writes the JSON and its tables (``.md``)
after every row.
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

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = {
    'cotta': 'configs/_base_/tta/cotta_original-views.py',
    'dat': 'configs/_base_/tta/dat_original-views.py',
    'svdp': 'configs/_base_/tta/svdp_original-views.py',
    'hybrid-tta': 'configs/_base_/tta/hybrid-tta.py',
}


def _hw(value: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HxW such as 540x960, got {value!r}')
    if min(h, w) < 16:
        raise argparse.ArgumentTypeError(f'sizes must be at least 16x16, got {value!r}')
    return h, w


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='cost of the multi-view TTA methods')
    parser.add_argument('--config', default='configs/acdc/segformer-b5_source.py',
                        help='the model (random weights) and its test_cfg')
    parser.add_argument('--size', type=_hw, default=(1080, 1920), help='original image HxW')
    parser.add_argument('--input', type=_hw, default=(540, 960), help='network input HxW')
    parser.add_argument('--crop', type=int, default=None, help='slide crop (default: config)')
    parser.add_argument('--stride', type=int, default=None, help='slide stride')
    parser.add_argument('--images', type=int, default=2, help='timed images per method')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed images per method first (the first configures it)')
    parser.add_argument('--methods', nargs='*', choices=list(METHODS), default=list(METHODS))
    parser.add_argument('--views-per-forward', nargs='*', type=int, default=[1, 2, 4, 6, 12])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--budget-gb', type=float, default=24.0,
                        help='the memory the views-per-forward ceiling must fit')
    parser.add_argument('--out', default='work_dirs/benchmark_teacher_cost.json')
    parser.add_argument('--worker', nargs=2, metavar=('KIND', 'VALUE'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error('--images must be >= 1')
    if any(v < 1 for v in args.views_per_forward):
        parser.error('--views-per-forward takes values >= 1')
    return args


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _model_cfg(args: argparse.Namespace, method: str | None):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, args.config)).model
    cfg.pop('init_cfg', None)
    if cfg.get('backbone', {}).get('init_cfg') is not None:
        cfg.backbone.init_cfg = None  # random weights: nothing to download
    test_cfg = dict(cfg.get('test_cfg') or {})
    if args.crop is not None:
        test_cfg = dict(mode='slide', crop_size=(args.crop, args.crop),
                        stride=(args.stride or args.crop, args.stride or args.crop))
    cfg.test_cfg = test_cfg
    if method is None:
        cfg.tta_method = dict(type='Source')
        return cfg
    tta = dict(Config.fromfile(osp.join(ROOT, METHODS[method])).tta_method)
    tta.pop('_delete_', None)
    cfg.tta_method = tta
    cfg.adapt_optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999)))
    if method == 'svdp':
        cfg.backbone = dict(type='SparsePromptedBackbone', backbone=cfg.backbone,
                            prompt=dict(sparse_rate=0.001, input_size=args.input))
    if method == 'hybrid-tta':  # adapters, mask token, a neck as wide as the decode head
        cfg.backbone = dict(type='HybridTTABackbone', backbone=cfg.backbone,
                            recon_channels=cfg.decode_head.channels)
    return cfg


def _build(args: argparse.Namespace, method: str | None):
    import torch
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import stag_seg  # noqa: F401
    init_default_scope('mmseg')
    torch.manual_seed(0)
    return MODELS.build(ConfigDict(_model_cfg(args, method))).to(args.device).eval()


def _batch(args: argparse.Namespace, seed: int, stretch: int = 0) -> dict:
    """An original image of ``--size`` and its pipeline resize to ``--input`` (keeping the
    aspect ratio; with ``stretch``, to ``--input`` rounded up to multiples of it, not keeping
    the ratio)."""
    import mmcv
    import numpy as np
    import torch
    from mmseg.structures import SegDataSample
    rng = np.random.default_rng(seed)
    original = rng.integers(0, 256, (*args.size, 3), dtype=np.uint8)
    h, w = args.input
    if stretch:
        h, w = -(-h // stretch) * stretch, -(-w // stretch) * stretch
        small = mmcv.imresize(original, (w, h), interpolation='bilinear')
    else:
        small = mmcv.imrescale(original, (w, h), interpolation='bilinear')
    shape = small.shape[:2]
    meta = dict(ori_shape=args.size, img_shape=shape, pad_shape=shape, ori_img=original,
                img_path=f'{seed}.png')
    img = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))
    return dict(inputs=[img], data_samples=[SegDataSample(metainfo=meta)])


def _peak_mb(args, base: float) -> float:
    import torch
    if args.device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2**20 - base
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base


def _base_mb(args) -> float:
    import torch
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return _rss_mb()


def _sync(args) -> None:
    import torch
    if args.device == 'cuda':
        torch.cuda.synchronize()


def worker_method(args: argparse.Namespace, method: str) -> dict:
    """``--images`` adaptation steps of ``method``: median seconds per image, peak memory."""
    import torch
    model = _build(args, method)
    stretch = 32 if method == 'hybrid-tta' else 0
    batches = [_batch(args, seed, stretch) for seed in range(args.warmup + args.images)]
    base = _base_mb(args)  # before the first step: teacher and anchor copies count
    times = []
    for batch in batches:
        _sync(args)
        start = time.perf_counter()
        with torch.no_grad():  # as MMEngine's TestLoop calls test_step
            model.test_step(batch)
        _sync(args)
        times.append(time.perf_counter() - start)
    return dict(seconds_per_image=statistics.median(times[args.warmup:]),
                seconds=times[args.warmup:], warmup_seconds=times[:args.warmup],
                peak_mb=_peak_mb(args, base))


def worker_views(args: argparse.Namespace, views_per_forward: int) -> dict:
    """The 14-view teacher alone with ``views_per_forward``; its averaged probabilities go to a
    file beside the output so the parent compares them with the loop's."""
    import torch

    from stag_seg.methods.views import ScaleFlipViews
    from stag_seg.models import segmentor_logits
    from stag_seg.structures import StepContext
    model = _build(args, None)
    views = ScaleFlipViews(source='original', views_per_forward=views_per_forward)
    batch = model.data_preprocessor(_batch(args, 0), False)
    metas = [dict(s.metainfo) for s in batch['data_samples']]
    ctx = StepContext(batch['inputs'], model, segmentor_logits, None, metas=metas)
    base = _base_mb(args)
    _sync(args)
    start = time.perf_counter()
    probs = views.run(model, ctx).average
    _sync(args)
    seconds = time.perf_counter() - start
    peak = _peak_mb(args, base)
    torch.save(probs.cpu(), _probs_path(args, views_per_forward))
    return dict(seconds_per_image=seconds, peak_mb=peak)


def _probs_path(args, views_per_forward: int) -> str:
    return f'{osp.splitext(args.out)[0]}.views{views_per_forward}.pt'


def _spawn(args: argparse.Namespace, kind: str, value: str) -> dict:
    argv = [sys.executable, osp.abspath(__file__), '--worker', kind, value,
            '--config', args.config, '--size', 'x'.join(map(str, args.size)),
            '--input', 'x'.join(map(str, args.input)), '--images', str(args.images),
            '--warmup', str(args.warmup),
            '--device', args.device, '--out', args.out]
    if args.crop is not None:
        argv += ['--crop', str(args.crop), '--stride', str(args.stride or args.crop)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        # a measurement that does not fit (the kernel's out-of-memory killer: -9) is a result
        # too: its row says how it ended, and the others are still measured
        reason = ('killed (signal 9; on the CPU usually out of memory)' if out.returncode == -9
                  else f'exit status {out.returncode}')
        last = out.stderr.strip().splitlines()[-1:]
        print(f'{kind} {value} failed: {reason}\n{out.stderr[-3000:]}', file=sys.stderr)
        return dict(error=f'{reason}: {last[0][-300:]}' if last else reason)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _write(args: argparse.Namespace, report: dict) -> None:
    """The JSON and its table beside it (.md), after every row, so that an interrupted run
    keeps what it measured."""
    fits = [int(v) for v, row in report['teacher'].items()
            if 'error' not in row and row['peak_mb'] <= args.budget_gb * 1024]
    report['views_per_forward_ceiling'] = max(fits) if fits else None
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    with open(osp.splitext(args.out)[0] + '.md', 'w') as f:
        f.write(teacher_cost_markdown(report) + '\n')


def teacher_cost_markdown(report: dict) -> str:
    """The tables of a report this tool wrote: the methods, then the teacher alone."""
    env = report['environment']
    where = env['cuda'] or f'{env["processor"] or env["machine"]}, {env["torch_threads"]} threads'
    h, w = report['size']
    lines = [f'`{report["config"]}` with random weights on {report["device"]} ({where}), a '
             f'{w}x{h} image resized to {report["input"][1]}x{report["input"][0]}; median of '
             f'{report["images"]} images after {report.get("warmup", 0)} untimed', '',
             '| method | s/image | peak memory (GB) |', '|---|---:|---:|']
    for method, row in report['methods'].items():
        lines.append(f'| {method} | ' + (f'{row["seconds_per_image"]:.1f} | '
                     f'{row["peak_mb"] / 1024:.2f} |' if 'error' not in row
                     else f'{row["error"]} | |'))
    lines += ['', '| teacher alone (one image), views per forward | s/image | peak memory (GB) | '
              'max abs. difference from the first | labels equal |', '|---:|---:|---:|---:|---|']
    for vpf, row in report['teacher'].items():
        if 'error' in row:
            lines.append(f'| {vpf} | {row["error"]} | | | |')
            continue
        lines.append(f'| {vpf} | {row["seconds_per_image"]:.1f} | {row["peak_mb"] / 1024:.2f} | '
                     f'{row["max_abs_diff_from_first"]:.1e} | '
                     f'{"yes" if row["same_labels_as_first"] else "no"} |')
    ceiling = report.get('views_per_forward_ceiling')
    lines += ['', f'views per forward within {report["budget_gb"]:g} GB: '
              f'{ceiling if ceiling is not None else "none measured"}']
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        kind, value = args.worker
        result = (worker_method(args, value) if kind == 'method'
                  else worker_views(args, int(value)))
        print(json.dumps(result))
        return result
    import torch
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    report = dict(
        config=args.config, size=list(args.size), input=list(args.input), images=args.images,
        warmup=args.warmup, device=args.device, budget_gb=args.budget_gb,
        environment=dict(machine=platform.machine(), processor=platform.processor(),
                         torch=torch.__version__, torch_threads=torch.get_num_threads(),
                         cuda=(torch.cuda.get_device_name() if args.device == 'cuda'
                               else None)),
        methods={}, teacher={})
    _write(args, report)
    for method in args.methods:
        row = report['methods'][method] = _spawn(args, 'method', method)
        print(f'{method:>10}: ' + (row['error'] if 'error' in row else
                                   f'{row["seconds_per_image"]:8.2f} s/image, '
                                   f'peak {row["peak_mb"]:9.1f} MB'), flush=True)
        _write(args, report)
    reference = None
    for vpf in sorted(set(args.views_per_forward)):
        row = report['teacher'][str(vpf)] = _spawn(args, 'views', str(vpf))
        if 'error' in row:
            print(f'teacher, {vpf:>2} per forward: {row["error"]}', flush=True)
        else:
            probs = torch.load(_probs_path(args, vpf))
            os.remove(_probs_path(args, vpf))
            if reference is None:
                reference = probs
            row['max_abs_diff_from_first'] = float((probs - reference).abs().max())
            row['same_labels_as_first'] = bool(torch.equal(probs.argmax(1),
                                                           reference.argmax(1)))
            print(f'teacher, {vpf:>2} per forward: {row["seconds_per_image"]:8.2f} s, peak '
                  f'{row["peak_mb"]:9.1f} MB, max |diff| {row["max_abs_diff_from_first"]:.2e}, '
                  f'labels equal: {row["same_labels_as_first"]}', flush=True)
        _write(args, report)
    print(teacher_cost_markdown(report))
    print(f'wrote {args.out} and its table beside it (.md)')
    return report


if __name__ == '__main__':
    main()
