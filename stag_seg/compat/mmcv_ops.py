"""A pure-PyTorch ``mmcv.ops`` for environments with mmcv-lite, which has no compiled ops.

mmseg 1.2.2 imports ``mmcv.ops`` at module level (``point_sample``, ``sigmoid_focal_loss``).
When ``mmcv._ext`` is missing, :func:`install_mmcv_ops_fallback` puts a small module in its
place: the two ops above in PyTorch, and for every other op a stand-in that imports fine but
raises ``ModuleNotFoundError`` naming the op as soon as it is used. A real compiled mmcv is never
shadowed. This is the one change the toolkit makes to its host when it is imported (mmseg cannot
be imported without it under mmcv-lite).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['MMCV_OPS_FALLBACK', 'install_mmcv_ops_fallback', 'point_sample',
           'sigmoid_focal_loss']

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
    # A failed earlier import may have left half-initialised submodules behind.
    for key in [k for k in sys.modules if k == 'mmcv.ops' or k.startswith('mmcv.ops.')]:
        del sys.modules[key]
    import mmcv
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    MMCV_OPS_FALLBACK = True
    return True


# --------------------------------------------------------------------------------------------
