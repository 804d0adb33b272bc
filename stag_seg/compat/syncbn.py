"""SyncBN where it cannot run: stock configs use ``SyncBN``, which needs a process group and
CUDA."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ['revert_sync_batchnorm']

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
