"""Run continual test-time adaptation from a config, the way MMSeg's tools/test.py tests.

    python tools/test_tta.py CONFIG [CHECKPOINT] [--overlay FILE ...] [--work-dir DIR]
                             [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
                             [--unsafe-load] [--show-dir DIR [--show-num K]] [--resume]

``--overlay`` merges config files over CONFIG in order, before ``--cfg-options``: a setting or a
model family, e.g. ``configs/_base_/settings/digits-c_label-shift.py`` (configs/digits_c/README.md).
Writes tta_results.{json,csv,md,png} to the work dir (``--work-dir``, else the config's
``work_dir``, else ``./work_dirs/<config name>``), beside the dumped config and
environment.json. ``--show-dir`` draws the first K predictions of every (round, domain).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='stag_seg: continual test-time adaptation (predict, then adapt, per batch)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='source checkpoint (default: the config\'s load_from)')
    parser.add_argument(
        '--overlay', nargs='+', default=[],
        help='config files merged over the config in order, before --cfg-options (a setting '
        'or a model family, e.g. configs/_base_/settings/digits-c_label-shift.py)')
    parser.add_argument('--work-dir', help='where results and logs go')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, e.g. model.tta_method.regularizers="[dict(type=\'STAG\')]" '
        'test_cfg.rounds=3')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load the checkpoint as a full pickle (it can run code): only for trusted files')
    parser.add_argument(
        '--resume', action='store_true',
        help='continue an interrupted run from the state it saved in the work dir '
        '(test_cfg.checkpoint_interval)')
    parser.add_argument(
        '--show-dir', help='draw input | prediction | ground truth of the first images of every '
        '(round, domain) there (a relative path is taken inside the work dir)')
    parser.add_argument('--show-num', type=int, default=4,
                        help='images drawn per (round, domain) with --show-dir (default 4)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    import stag_seg  # noqa: F401  (registers the toolkit before the config is built)
    from stag_seg import compat
    from stag_seg.engine import check_options, merge_overlays, prepare_config

    compat.prepare_environment()  # forks' config paths, CPU processes, safe checkpoint loading
    try:
        check_options(args.cfg_options)
        cfg = Config.fromfile(args.config)
        merge_overlays(cfg, args.overlay)
    except (FileNotFoundError, KeyError, ValueError) as err:
        sys.exit(err.args[0] if isinstance(err, KeyError) and err.args else str(err))
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.checkpoint is not None:
        cfg.load_from = args.checkpoint
    if not cfg.get('load_from'):
        sys.exit(f'{args.config} has no load_from: pass the source CHECKPOINT to adapt')
    if '://' not in cfg.load_from and not osp.isfile(cfg.load_from):
        sys.exit(f'checkpoint not found: {cfg.load_from}')
    if args.resume:
        if cfg.get('test_cfg', {}).get('type') != 'ContinualTestLoop':
            sys.exit('--resume needs test_cfg.type=ContinualTestLoop, which saves the state')
        cfg.test_cfg.resume = True
    if args.show_dir:
        if args.show_num < 1:
            sys.exit(f'--show-num must be >= 1, got {args.show_num}')
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='TTAShowHook', show_dir=args.show_dir, num_images=args.show_num)]
    if args.unsafe_load:
        compat.enable_full_pickle_loading()
    try:  # the seed of the stream and the learning rate at the loader's batch size
        prepare_config(cfg)
    except (KeyError, TypeError, ValueError) as err:
        sys.exit(err.args[0] if isinstance(err, KeyError) and err.args else str(err))
    compat.cpu_distributed_config(cfg)  # gloo and CPU-placed DDP where no GPU exists

    try:
        Runner.from_cfg(cfg).test()
    except Exception as err:
        # torchrun reports which process failed; say why, so one rank's error is never lost
        rank = os.environ.get('RANK', '0')
        print(f'test_tta.py: rank {rank} failed: {type(err).__name__}: {err}', file=sys.stderr,
              flush=True)
        raise


if __name__ == '__main__':
    main()
