"""Everything that papers over the software environment lives here, one module per problem.

- :mod:`~stag_seg.compat.mmcv_ops`: mmcv-lite has no compiled ops, yet mmseg imports
  ``mmcv.ops`` at module level; a pure-PyTorch stand-in is installed when ``import stag_seg``
  runs, the one change importing the toolkit makes to its host.
- :mod:`~stag_seg.compat.checkpoints`: checkpoints load with torch's ``weights_only`` unpickler
  and an allow-list of the numpy and MMEngine types they hold; a full pickle needs an explicit,
  warned opt-in.
- :mod:`~stag_seg.compat.syncbn`: ``SyncBN`` becomes BN where it cannot run (one process, or no
  CUDA).
- :mod:`~stag_seg.compat.distributed`: MMEngine's pytorch launcher and the stock distributed
  configs on machines without GPUs (gloo).
- :mod:`~stag_seg.compat.packages`: the toolkit's optional extras, and the OneDL forks of the
  OpenMMLab packages, which keep the import names under other distribution names.

Nothing here patches the host at import time except the ``mmcv.ops`` fallback. The changes to
torch's allow-list and to private MMEngine functions are made only where they are needed:
:func:`prepare_checkpoint_loading` before a checkpoint is loaded (``TTAHook`` and
``ContinualTestLoop`` call it), and :func:`prepare_environment`, which the toolkit's tools call
first thing and which a script of one's own can call too.
"""
from __future__ import annotations

from . import mmcv_ops
from .checkpoints import (SAFE_CHECKPOINT_GLOBALS, enable_full_pickle_loading,
                          guard_mmengine_checkpoint_loading, load_checkpoint,
                          register_safe_globals)
from .distributed import allow_cpu_distributed, cpu_distributed_config
from .mmcv_ops import install_mmcv_ops_fallback, point_sample, sigmoid_focal_loss
from .packages import RENAMED_DISTRIBUTIONS, map_renamed_distributions, require_extra
from .syncbn import revert_sync_batchnorm

__all__ = [
    'MMCV_OPS_FALLBACK', 'RENAMED_DISTRIBUTIONS', 'SAFE_CHECKPOINT_GLOBALS',
    'allow_cpu_distributed', 'cpu_distributed_config', 'enable_full_pickle_loading',
    'guard_mmengine_checkpoint_loading', 'install_mmcv_ops_fallback', 'load_checkpoint',
    'map_renamed_distributions', 'point_sample', 'prepare_checkpoint_loading',
    'prepare_environment', 'register_safe_globals', 'require_extra', 'revert_sync_batchnorm',
    'sigmoid_focal_loss',
]


def __getattr__(name: str):
    # read when asked: install_mmcv_ops_fallback() sets it after this module was imported
    if name == 'MMCV_OPS_FALLBACK':
        return mmcv_ops.MMCV_OPS_FALLBACK
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def prepare_checkpoint_loading() -> None:
    """Before MMEngine loads a checkpoint: the allow-list in torch's ``weights_only`` unpickler,
    and OneDL's MMEngine loader held to the same rule (a no-op with the stock MMEngine)."""
    register_safe_globals()
    guard_mmengine_checkpoint_loading()


def prepare_environment() -> None:
    """What a script that runs the toolkit calls first (``tools/test_tta.py`` does).

    - :func:`map_renamed_distributions`, before any ``mmseg::``/``mmpretrain::`` config path is
      read (OneDL forks);
    - :func:`allow_cpu_distributed`, before MMEngine initialises a process group (CPU-only
      machines under ``--launcher pytorch``);
    - :func:`prepare_checkpoint_loading`.
    """
    map_renamed_distributions()
    allow_cpu_distributed()
    prepare_checkpoint_loading()
