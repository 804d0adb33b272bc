"""What every self-adapting model wrapper shares: its method and its adapter."""
from __future__ import annotations

import torch
from torch import nn

from .. import compat
from ..methods import BaseTTAMethod, build_method
from .adapter import Adapter, build_adapter

__all__ = ['AdaptiveModelMixin']


class AdaptiveModelMixin:
    """Mixed into an MM model class (before it) so that its ``test_step`` adapts.

    The adapter (:mod:`stag_seg.models.adapter`) is chosen by the class, at construction; it
    attaches the method on the first ``test_step``, after the runner loaded the checkpoint, so
    the state the method snapshots for resets is the source model's. The runner calls
    ``model.eval()`` before testing; :meth:`train` keeps the layers the method put in train mode
    (BatchNorm with test-batch statistics) in that mode.
    """

    tta_method: BaseTTAMethod
    tta_adapter: Adapter

    def _init_adaptation(self, tta_method: dict | None, adapt_optim_wrapper: dict | None) -> None:
        cfg = dict(type='Source') if tta_method is None else tta_method
        compat.prepare_checkpoint_loading()  # a runner loads the source weights next
        if not torch.cuda.is_available():
            # now, before a runner wraps the model for several CPU processes: DDP refuses SyncBN
            # on CPU modules (and where a process group will exist, attaching is too late)
            compat.revert_sync_batchnorm(self)
        # plain attributes, not submodules: both hold a reference to this model
        self.tta_method = build_method(cfg, adapt_optim_wrapper)
        self.tta_adapter = build_adapter(self, self.tta_method)

    def test_step(self, data: dict | tuple | list) -> list:
        """Predict a batch with the current weights, then adapt on it once."""
        return self.tta_adapter.test_step(data)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Refuse a checkpoint whose tensors do not fit, instead of adapting a half-loaded model.

        MMEngine loads checkpoints with ``strict=False`` and only logs shape mismatches, which
        would leave, say, a randomly initialised classifier to be adapted.
        """
        if not prefix:
            own = {k: v.shape for k, v in self.state_dict().items()}
            bad = [(k, tuple(v.shape), tuple(own[k])) for k, v in state_dict.items()
                   if k in own and hasattr(v, 'shape') and tuple(v.shape) != tuple(own[k])]
            if bad:
                lines = '; '.join(f'{k}: checkpoint {a} vs model {b}' for k, a, b in bad[:5])
                more = f' (and {len(bad) - 5} more)' if len(bad) > 5 else ''
                raise ValueError(f'the checkpoint does not fit {type(self).__name__}: {len(bad)} '
                                 f'tensors differ in shape: {lines}{more}. {_hint(bad)}')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def train(self, mode: bool = True) -> nn.Module:
        super().train(mode)
        if self.tta_method.configured:
            self.tta_method.apply_modes()
        return self


def _hint(mismatches: list[tuple]) -> str:
    """What to change in the config for the commonest mismatch: the number of classes."""
    for key, got, want in mismatches:
        if key.endswith(('conv_seg.weight', 'fc.weight', 'head.weight')) and got[0] != want[0]:
            return (f'The checkpoint\'s {key} has {got[0]} classes, the model\'s classifier '
                    f'{want[0]}: set num_classes={got[0]} in the decode head / head config, or '
                    'use a checkpoint for this model.')
    return 'Check that the config describes the model the checkpoint was trained as.'
