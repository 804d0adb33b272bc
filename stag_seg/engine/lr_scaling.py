"""The learning rate of a method at another batch size, by the rule its reference code uses.

The public Tent/EATA/SAR/DeYO ImageNet-C scripts (SAR's and DeYO's ``main.py``) state their
learning rates at batch size 64 and scale them linearly: ``lr * batch / 64``, doubled again
below batch size 32 for the CNNs (``(0.00025 / 64) * bs * 2 if bs < 32``) but not for the ViT
(``(0.001 / 64) * bs``); at batch size 1 SAR and DeYO double that once more ("double lr for sar
under bs=1"), Tent and EATA do not. A config states its rule as ``lr_scaling`` with the
arguments of :func:`scaled_lr`.
"""
from __future__ import annotations

__all__ = ['scaled_lr']


def scaled_lr(lr: float,
              batch_size: int,
              reference_batch_size: int = 64,
              below_32: float = 2.0,
              at_1: float = 1.0) -> float:
    """``lr`` (stated at ``reference_batch_size``) at ``batch_size``.

    Args:
        lr (float): The learning rate at ``reference_batch_size``.
        batch_size (int): The batch size to run at.
        reference_batch_size (int): Where ``lr`` is stated. Defaults to 64.
        below_32 (float): Extra factor below batch size 32. Defaults to 2 (the CNN rule;
            1 for the ViT).
        at_1 (float): Extra factor at batch size 1. Defaults to 1 (2 for SAR and DeYO).

    Returns:
        float: ``lr`` itself at 32 and above (the references keep their base rate there),
        else ``lr * batch_size / reference_batch_size * below_32``, times ``at_1`` at 1.
    """
    if batch_size < 1 or reference_batch_size < 1:
        raise ValueError(f'batch sizes must be >= 1, got batch_size={batch_size}, '
                         f'reference_batch_size={reference_batch_size}')
    if batch_size >= 32:
        return lr
    scaled = lr * batch_size / reference_batch_size * below_32
    return scaled * at_1 if batch_size == 1 else scaled
