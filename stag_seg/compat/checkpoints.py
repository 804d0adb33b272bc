"""Checkpoint loading that runs no code: torch's ``weights_only`` unpickler with an allow-list.

torch >= 2.6 loads checkpoints with ``weights_only=True``; checkpoints written by MMEngine hold
numpy arrays and MMEngine objects, which that loader refuses. They are allowed by an explicit
allow-list (:data:`SAFE_CHECKPOINT_GLOBALS`, :func:`register_safe_globals`). Loading arbitrary
pickles, which can run code, needs the explicit opt-in :func:`enable_full_pickle_loading`, and it
warns. Where MMEngine has a loader of its own that would fall back to a full pickle silently
(OneDL's), :func:`guard_mmengine_checkpoint_loading` holds it to the same rule; it replaces a
private MMEngine function, so it is applied only before a checkpoint is loaded (by
:func:`stag_seg.compat.prepare_checkpoint_loading`).
"""
from __future__ import annotations

import logging
import os
import pickle
import warnings
from typing import Any

import numpy as np
import torch

__all__ = ['SAFE_CHECKPOINT_GLOBALS', 'enable_full_pickle_loading',
           'guard_mmengine_checkpoint_loading', 'load_checkpoint', 'register_safe_globals']

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
