"""Distributed runs on machines without GPUs (the gloo backend).

MMEngine's ``--launcher pytorch`` calls ``torch.cuda.set_device`` unconditionally, so CPU
processes cannot start; :func:`allow_cpu_distributed` replaces that private MMEngine function so
that it skips the call where no GPU exists (``tools/test_tta.py`` applies it through
:func:`stag_seg.compat.prepare_environment`). The stock configs ask for NCCL and a DDP wrapper
pinned to a GPU; :func:`cpu_distributed_config` turns a distributed config into gloo and
CPU-placed DDP where no GPU exists.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ['allow_cpu_distributed', 'cpu_distributed_config']

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
