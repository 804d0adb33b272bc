"""Everything that papers over the software environment lives here, and only here.

The problems of the environment (docs/design.md, "Environment"):

1. ``mmcv-lite`` has no compiled ops, yet ``mmseg`` 1.2.2 imports ``mmcv.ops`` at module
   level (``point_sample``, ``sigmoid_focal_loss``). When ``mmcv._ext`` is missing, a small
   pure-PyTorch ``mmcv.ops`` is installed in its place. Ops without a fallback import fine but
   raise ``ModuleNotFoundError`` naming the op as soon as they are used. A real compiled mmcv is
   never shadowed.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``; checkpoints written by MMEngine
   hold numpy arrays and MMEngine objects, which that loader refuses. They are allowed by an
   explicit allow-list (:data:`SAFE_CHECKPOINT_GLOBALS`). Loading arbitrary pickles, which can
   run code, needs the explicit opt-in :func:`enable_full_pickle_loading`, and it warns. Where
   MMEngine has a loader of its own that would fall back to a full pickle silently (OneDL's),
   :func:`guard_mmengine_checkpoint_loading` holds it to the same rule.
3. Stock configs use ``SyncBN``, which fails without a process group or without CUDA.
   :func:`revert_sync_batchnorm` turns it into plain BN in those cases only.
4. MMEngine's ``--launcher pytorch`` calls ``torch.cuda.set_device`` unconditionally, so CPU
   processes (gloo) cannot start; :func:`allow_cpu_distributed` skips that call where no GPU
   exists. The stock configs ask for NCCL and a DDP wrapper pinned to a GPU;
   :func:`cpu_distributed_config` turns a distributed config into gloo and CPU-placed DDP
   where no GPU exists.
5. Optional extras: :func:`require_extra` imports a module that only an extra of the package
   installs, or names the extra to install.
6. The OneDL forks (``onedl-mmengine``, ``onedl-mmsegmentation``, ...) keep the import names
   but not the distribution names, so MMEngine's ``mmseg::`` and ``mmpretrain::`` config paths
   find no ``mmsegmentation``; :func:`map_renamed_distributions` points them at the forks.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import sys
import types
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# mmengine imports pkg_resources (its `mmseg::` config paths need it) and setuptools warns on
# every import that it is deprecated; the pin setuptools<81 keeps it available.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
# mmseg 1.2.2 warns about its own internals whenever a stock decode head builds its loss.
warnings.filterwarnings('ignore', message='``build_loss`` would be deprecated soon')
warnings.filterwarnings('ignore', message='Default ``avg_non_ignore`` is False')

__all__ = [
    'MMCV_OPS_FALLBACK', 'allow_cpu_distributed', 'cpu_distributed_config',
    'SAFE_CHECKPOINT_GLOBALS',
    'enable_full_pickle_loading', 'guard_mmengine_checkpoint_loading',
    'install_mmcv_ops_fallback', 'load_checkpoint',
    'map_renamed_distributions', 'require_extra', 'revert_sync_batchnorm',
]

#: Distributions that forks publish under another name: (upstream, fork) pairs.
RENAMED_DISTRIBUTIONS = (('mmsegmentation', 'onedl-mmsegmentation'),
                         ('mmpretrain', 'onedl-mmpretrain'))


def map_renamed_distributions() -> dict[str, str]:
    """Let ``mmseg::``/``mmpretrain::`` config paths resolve to forks that keep the import
    name but publish another distribution (the OneDL ones); a no-op with the originals.

    Returns:
        dict: ``{module: distribution}`` of what was remapped.
    """
    from importlib.metadata import PackageNotFoundError, version
    try:
        from mmengine.config.utils import MODULE2PACKAGE
    except ImportError:
        return {}
    changed = {}
    for module, package in list(MODULE2PACKAGE.items()):
        fork = dict(RENAMED_DISTRIBUTIONS).get(package)
        if fork is None:
            continue
        try:
            version(package)
            continue  # the original is installed
        except PackageNotFoundError:
            pass
        try:
            version(fork)
        except PackageNotFoundError:
            continue
        MODULE2PACKAGE[module] = changed[module] = fork
    return changed


def require_extra(module: str, extra: str, what: str) -> types.ModuleType:
    """Import ``module``, which only the package extra ``extra`` installs.

    Raises:
        ModuleNotFoundError: naming ``what`` needs it and the command that installs it.
    """
    import importlib
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split('.')[0] != module.split('.')[0]:
            raise  # the module is there but one of its own imports is missing
        raise ModuleNotFoundError(
            f"{what} needs the '{module}' module: pip install 'stag_seg[{extra}]'",
            name=module) from None


# --------------------------------------------------------------------------------------------
# 1. mmcv.ops fallback
# --------------------------------------------------------------------------------------------


def point_sample(input: Tensor, points: Tensor, align_corners: bool = False,
                 **kwargs: Any) -> Tensor:
    """Sample ``input`` (N, C, H, W) at ``points`` (N, P, 2) or (N, Hp, Wp, 2) in [0, 1] (x, y).

    Same contract as ``mmcv.ops.point_sample``: bilinear sampling with zero padding, the
    result is (N, C, P) for point lists and (N, C, Hp, Wp) for point grids.
    """
    as_list = points.dim() == 3
    grid = points.unsqueeze(2) if as_list else points
    out = F.grid_sample(input, 2.0 * grid - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if as_list else out


def sigmoid_focal_loss(pred: Tensor, target: Tensor, gamma: float = 2.0, alpha: float = 0.25,
                       weight: Tensor | None = None, reduction: str = 'mean') -> Tensor:
    """Sigmoid focal loss (Lin et al. 2017) with ``mmcv.ops.sigmoid_focal_loss``'s contract.

    ``pred`` is (N, C) logits and ``target`` (N,) class indices, where ``C`` means background
    (every class negative). ``weight`` (C,) scales each sample's row by the weight of its
    target class, as mmcv's kernel does (background rows, which mmcv leaves undefined, are not
    scaled). ``reduction`` is ``'none'``, ``'mean'`` or ``'sum'``.
    """
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    num_classes = pred.size(1)
    one_hot = F.one_hot(target.long(), num_classes + 1)[:, :num_classes].to(pred.dtype)
    prob = pred.sigmoid()
    p_t = prob * one_hot + (1 - prob) * (1 - one_hot)
    alpha_t = alpha * one_hot + (1 - alpha) * (1 - one_hot)
    loss = F.binary_cross_entropy_with_logits(pred, one_hot, reduction='none')
    loss = alpha_t * (1 - p_t).pow(gamma) * loss
    if weight is not None:
        row = torch.where(target < num_classes, weight[target.clamp_max(num_classes - 1)],
                          torch.ones_like(target, dtype=weight.dtype))
        loss = loss * row.view(-1, 1)
    if reduction == 'mean':
        return loss.sum() / pred.size(0)
    return loss.sum() if reduction == 'sum' else loss


def _missing_op(name: str) -> type:
    """A stand-in for a compiled op without fallback: importable, fails clearly when used."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise ModuleNotFoundError(
            f'mmcv.ops.{name} needs the compiled mmcv ops, but only mmcv-lite is installed. '
            'Build them with `make mmcv-full` (compiled mmcv 2.1.0), or choose a model that '
            f'does not use {name}.')

    return type(name, (), {'__init__': fail, '__new__': fail, '__call__': fail})


# Ops mmseg 1.2.2 / mmpretrain 1.2.0 may import from mmcv.ops, and what we give each.
_FALLBACKS = {'point_sample': point_sample, 'sigmoid_focal_loss': sigmoid_focal_loss}

#: True once the pure-PyTorch ``mmcv.ops`` was installed (compiled ops are missing).
MMCV_OPS_FALLBACK = False


def install_mmcv_ops_fallback() -> bool:
    """Install the pure-PyTorch ``mmcv.ops`` when ``mmcv._ext`` is missing.

    Returns:
        bool: True when the fallback is (now) in place, False when real compiled ops exist.
    """
    global MMCV_OPS_FALLBACK
    if MMCV_OPS_FALLBACK:
        return True
    if importlib.util.find_spec('mmcv') is None:
        raise ModuleNotFoundError(
            'stag_seg needs mmcv 2.x: a compiled mmcv (mmcv>=2.0,<2.2 for mmsegmentation 1.2) '
            "or mmcv-lite (pip install 'stag_seg[lite]'); in a clone, `make install` installs "
            'the pinned stack')
    if importlib.util.find_spec('mmcv._ext') is not None:
        return False
    ops = types.ModuleType('mmcv.ops')
    ops.__doc__ = 'Pure-PyTorch stand-in for mmcv.ops, installed by stag_seg.compat.'
    ops.__path__ = []  # a package, so `import mmcv.ops.<x>` fails with ModuleNotFoundError
    for name, fn in _FALLBACKS.items():
        setattr(ops, name, fn)

    stubs: dict[str, type] = {}

    def __getattr__(name: str) -> Any:
        if name.startswith('__'):
            raise AttributeError(name)
        return stubs.setdefault(name, _missing_op(name))

    ops.__getattr__ = __getattr__
    # mmcv.cnn warns on every import that MultiScaleDeformableAttention is missing; we know.
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    # A failed earlier import may have left half-initialised submodules behind.
    for key in [k for k in sys.modules if k == 'mmcv.ops' or k.startswith('mmcv.ops.')]:
        del sys.modules[key]
    import mmcv
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    MMCV_OPS_FALLBACK = True
    return True


# --------------------------------------------------------------------------------------------
# 2. safe checkpoint loading
# --------------------------------------------------------------------------------------------


_HISTORY_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(owner: Any, name: str) -> Any:
    """The one ``getattr`` a checkpoint may call: a statistics method of ``HistoryBuffer``.

    MMEngine pickles ``HistoryBuffer._statistics_methods`` (in every training checkpoint's
    ``message_hub``) as ``getattr(HistoryBuffer, 'min')`` and so on. A general ``getattr``
    would let a pickle reach arbitrary attributes, so only these are resolved.
    """
    from mmengine.logging import HistoryBuffer
    allowed = set(_HISTORY_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint calls getattr({owner!r}, {name!r}); the safe loader only resolves the '
        f'statistics methods {sorted(allowed)} of mmengine HistoryBuffer')


def _safe_globals() -> list:
    """Types that MMEngine/MMSeg checkpoints hold besides tensors; none of them runs code."""
    from mmengine.logging import HistoryBuffer
    from numpy.dtypes import (BoolDType, Float16DType, Float32DType, Float64DType,
                              Int32DType, Int64DType, UInt8DType)

    multiarray = np._core.multiarray
    return [
        np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
        # pickles written under numpy 1.x name the same functions numpy.core.multiarray.*
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
        BoolDType, Float16DType, Float32DType, Float64DType, Int32DType, Int64DType, UInt8DType,
        HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
        torch.torch_version.TorchVersion,  # a str subclass; `torch.__version__` in metas
    ]


#: Filled by :func:`register_safe_globals`; what ``weights_only`` loading accepts beyond torch's
#: own.
SAFE_CHECKPOINT_GLOBALS: list = []

_FULL_PICKLE_ENV = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


def register_safe_globals() -> None:
    """Allow the types of :func:`_safe_globals` in torch's ``weights_only`` unpickler.

    Called again before each load: torch's ``safe_globals`` context manager, which some
    loaders use (OneDL's mmengine), removes its entries from the global list when it exits,
    ours among them where the two lists overlap.
    """
    if not SAFE_CHECKPOINT_GLOBALS:
        SAFE_CHECKPOINT_GLOBALS.extend(_safe_globals())
    # torch < 2.4 has no allow-list; there weights_only loading takes tensors only
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)


def guard_mmengine_checkpoint_loading() -> bool:
    """Make MMEngine's checkpoint loader follow this module's policy where it has its own.

    OneDL's mmengine loads checkpoints through ``_safe_torch_load``, which silently falls
    back to a full pickle (which can run code) when the safe load fails. Here that function
    loads with the allow-list and refuses other files unless the explicit opt-in
    (:func:`enable_full_pickle_loading`) was given, as the stock mmengine does on torch >= 2.6.

    Returns:
        bool: Whether a loader was replaced (False with the stock mmengine).
    """
    try:
        from mmengine.runner import checkpoint
    except ImportError:
        return False
    if not hasattr(checkpoint, '_safe_torch_load') or \
            getattr(checkpoint._safe_torch_load, '_stag_seg_guard', False):
        return False

    def safe_torch_load(file, map_location=None, weights_only=None):
        if weights_only is False:  # the caller's explicit choice
            return torch.load(file, map_location=map_location, weights_only=False)
        return _load(file, map_location, name=getattr(file, 'name', str(file)))

    safe_torch_load._stag_seg_guard = True
    checkpoint._safe_torch_load = safe_torch_load
    return True


def enable_full_pickle_loading() -> None:
    """Opt in to loading checkpoints as full pickles, which can execute arbitrary code.

    Only for checkpoints from a source you trust. It affects every later ``torch.load`` in this
    process that does not set ``weights_only`` itself (MMEngine's loaders included).
    """
    warnings.warn(
        'Full-pickle checkpoint loading is enabled: a checkpoint can now run arbitrary code '
        'when it is loaded. Only load files you trust.', UserWarning, stacklevel=2)
    logging.getLogger('stag_seg').warning('full-pickle checkpoint loading enabled')
    os.environ[_FULL_PICKLE_ENV] = '1'


def load_checkpoint(filename: str, map_location: str | torch.device = 'cpu') -> Any:
    """Load a checkpoint file with the ``weights_only`` unpickler and the allow-list.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        pickle.UnpicklingError: the file holds objects outside the allow-list (for instance a
            pickle that would run code); the message names the fix.
    """
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return _load(filename, map_location, name=filename)


def _load(file: Any, map_location: Any, name: str) -> Any:
    """``torch.load`` with the allow-list, or a full pickle after the explicit opt-in."""
    register_safe_globals()
    full = os.environ.get(_FULL_PICKLE_ENV, '0').lower() in ('1', 'y', 'yes', 'true')
    try:
        return torch.load(file, map_location=map_location, weights_only=not full)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f'refused to load {name}: it holds objects outside the safe allow-list, and '
            'loading them could run code. If you trust the file, opt in with '
            '`--unsafe-load` (tools) or stag_seg.compat.enable_full_pickle_loading(). '
            f'Details: {err}') from None


# --------------------------------------------------------------------------------------------
# 3. SyncBN without a process group
# --------------------------------------------------------------------------------------------


def revert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace ``SyncBatchNorm`` layers by ``BatchNorm2d`` where they cannot run.

    That is without a process group (one process), or without CUDA: PyTorch's SyncBN and its
    DDP wrapper only work on GPUs, so CPU processes normalise per rank. Returns the model (a new
    object only when the top-level module itself was a SyncBN).
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and torch.cuda.is_available():
        return model
    from mmengine.model import revert_sync_batchnorm as revert
    return revert(model)


# --------------------------------------------------------------------------------------------
# 4. torchrun on CPUs
# --------------------------------------------------------------------------------------------


def allow_cpu_distributed() -> None:
    """Let MMEngine's pytorch launcher start CPU-only processes (the gloo backend).

    ``mmengine.dist.utils._init_dist_pytorch`` selects ``torch.cuda.set_device(LOCAL_RANK)``
    before creating the process group, which raises where there is no GPU. Where CUDA is
    available nothing changes.
    """
    import mmengine.dist.utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, '_stag_seg_cpu', False):
        return

    def init_dist_pytorch(backend: str = 'nccl', init_backend: str = 'torch', **kwargs: Any):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        import torch.distributed as dist
        dist.init_process_group(backend=backend, **kwargs)

    init_dist_pytorch._stag_seg_cpu = True
    dist_utils._init_dist_pytorch = init_dist_pytorch


def cpu_distributed_config(cfg: Any) -> bool:
    """Let a distributed config (``cfg.launcher`` not ``'none'``) run where there is no GPU.

    NCCL needs GPUs, so its backend becomes gloo, which runs the same job on CPUs; the runner's
    default wrapper pins each process to a GPU (``device_ids=[LOCAL_RANK]``), so the model is
    wrapped in ``MMDistributedDataParallel`` without device ids unless the config chose a
    wrapper. Where CUDA is available, or without a launcher, nothing changes.

    Args:
        cfg (Config): The config, edited in place.

    Returns:
        bool: Whether the config was changed for CPUs.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
    cfg.setdefault('model_wrapper_cfg', dict(type='MMDistributedDataParallel',
                                             device_ids=None, broadcast_buffers=False))
    return True
