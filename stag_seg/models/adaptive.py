"""What every self-adapting model wrapper shares: the method, its tap and the adapted step."""
from __future__ import annotations

from torch import nn

from .. import compat
from ..methods.base import BaseTTAMethod, build_method
from .steps import adapted_test_step, tap_model
from .tap import ClassifierTap

__all__ = ['AdaptiveModelMixin']


class AdaptiveModelMixin:
    """Mixed into an MM model class (before it) so that its ``test_step`` adapts.

    The method is configured on the first ``test_step``, after the runner loaded the
    checkpoint, so the state it snapshots for resets is the source model's. The runner calls
    ``model.eval()`` before testing; :meth:`train` keeps the layers the method put in train mode
    (BatchNorm with test-batch statistics) in that mode.
    """

    tta_method: BaseTTAMethod

    def _init_adaptation(self, tta_method: dict | None, adapt_optim_wrapper: dict | None) -> None:
        cfg = dict(type='Source') if tta_method is None else tta_method
        # a plain attribute, not a submodule: the method holds a reference to this model
        self.tta_method = build_method(cfg, adapt_optim_wrapper)
        self._tap: ClassifierTap | None = None

    def test_step(self, data: dict | tuple | list) -> list:
        """Predict a batch with the current weights, then adapt on it once."""
        if not self.tta_method.configured:
            self.configure_adaptation()
        return adapted_test_step(self)(self, self.tta_method, self._tap, data)

    def configure_adaptation(self) -> None:
        """Prepare the model for its method: SyncBN without a process group, tap, modes."""
        compat.revert_sync_batchnorm(self)
        if self.tta_method.needs_grad:
            self._tap = tap_model(self)
        self.tta_method.configure(self)

    def reset_adaptation(self) -> None:
        """Return to the source weights and method state (episodic protocols)."""
        self.tta_method.reset()

    def train(self, mode: bool = True) -> nn.Module:
        super().train(mode)
        if self.tta_method.configured:
            self.tta_method.apply_modes()
        return self
