"""RDumb: ETA (EATA without its Fisher penalty), reset to the source every 1000 steps.

Paper: Press, Schneider, Kümmerer and Bethge, "RDumb: A simple approach that questions our
progress in continual test-time adaptation", NeurIPS 2023 (https://arxiv.org/abs/2306.05401).
Reference: oripress/CCC (``models/rdumb.py``) and its configuration in
mariodoebler/test-time-adaptation (``cfgs/*/rdumb.yaml``: ``ADAPTATION eata``,
``FISHER_ALPHA 0``, ``MODEL.RESET_AFTER_NUM_UPDATES 1000``), whose benchmark tables these
configs follow.

The reset is the schedule every method has (``reset_every``, on
:class:`~stag_seg.methods.BaseTTAMethod`): after every ``reset_every``-th step the weights, the
optimizer (its momentum) and EATA's moving average return to the source; the count runs on. This
class only fixes EATA's options to RDumb's.

Where the two references differ (the configs follow mariodoebler's): CCC's code resets before
the forward whenever its step count is a multiple of 1000 (the same steps), fixes
``e0 = 0.4 ln 1000`` and ``d_margin = 0.05``, trains the BatchNorm affine parameters only and
uses SGD without Nesterov momentum; mariodoebler's uses ``e0 = 0.4 ln C``, trains every
normalization layer's affine parameters, and SGD with Nesterov momentum on ImageNet-C (Adam on
CIFAR, with ``d_margin`` 0.4).
"""
from __future__ import annotations

from ..registry import TTA_METHODS
from .eata import EATA

__all__ = ['RDumb']


@TTA_METHODS.register_module()
class RDumb(EATA):
    """EATA without the Fisher penalty, reset to the source every ``reset_every`` steps.

    Args:
        reset_every (int): Steps between resets. Defaults to 1000.
        d_margin (float): EATA's redundancy threshold. Defaults to 0.05 (ImageNet-C).
        **kwargs: ``e0`` and EATA's other options but the Fisher's, ``optim_wrapper``,
            ``regularizers``.
    """

    def __init__(self, reset_every: int = 1000, d_margin: float = 0.05, **kwargs) -> None:
        for key in ('fisher_data', 'fisher_alpha'):
            if key in kwargs:
                raise ValueError(f'RDumb is EATA without its Fisher penalty: {key} has no '
                                 "effect; use type='EATA' with reset_every for a Fisher penalty "
                                 'and resets')
        super().__init__(d_margin=d_margin, fisher_alpha=0.0, fisher_data=None,
                         reset_every=reset_every, **kwargs)

    def __repr__(self) -> str:
        return (f'RDumb(reset_every={self.reset_every}, e0={self.e0}, d_margin={self.d_margin}, '
                f'regularizers={self.regularizers})')
