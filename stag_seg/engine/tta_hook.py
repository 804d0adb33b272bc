"""``TTAHook`` and ``STAGHook``: online adaptation inside any MM test loop, from a config.

Add to a stock MMSeg or mmpretrain config::

    custom_imports = dict(imports=['stag_seg'], allow_failed_imports=False)
    custom_hooks = [dict(type='STAGHook', method=dict(type='Tent'),
                         optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-4)))]

and run the stock test flow (``Runner.from_cfg(cfg).test()``, i.e. ``tools/test.py``).
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from .. import compat
from ..methods import BaseTTAMethod, build_method
from ..models import Adapter, build_adapter
from ..stag import STAG
from .stats_hook import TTAStatsHook

__all__ = ['STAGHook', 'TTAHook']

FINAL_STATES = ('keep', 'reset')


@HOOKS.register_module()
class TTAHook(Hook):
    """Adapt the runner's model while it is tested: predict each batch, then update on it once.

    At ``before_test`` the model (an MMSeg segmentor whose decode head ends in ``conv_seg``, or
    an mmpretrain classifier whose head ends in an ``nn.Linear``) gets the adapter of its family
    (:mod:`stag_seg.models.adapter`, the one ``TTAEncoderDecoder`` uses), which attaches the
    method, and its ``test_step`` is replaced, on that model instance only, by the adapter's. At
    ``after_test`` the original ``test_step`` and the layers' modes come back; the weights stay
    adapted or return to the source as ``final_state`` says. Under a test loop that has no
    :class:`~stag_seg.engine.TTAStatsHook` (MMEngine's ``TestLoop``), this hook writes the same
    per-step scalars through one of its own.

    Args:
        method (dict): A method config, e.g. ``dict(type='Tent')``.
        regularizers (Sequence[dict]): Added to the method's, e.g. ``[dict(type='STAG')]``.
            Defaults to ().
        optim_wrapper (dict, optional): Optimizer of the adapted parameters when ``method``
            has none, e.g. ``dict(optimizer=dict(type='Adam', lr=1e-4))``. Defaults to None.
        final_state (str): After the test, ``'keep'`` the adapted weights in the runner's
            model or ``'reset'`` them to the source. Defaults to ``'keep'``.
        save_adapted (bool): Save the adapted weights to
            ``<work_dir>/adapted_weights.pth`` after the test. Defaults to False.

    Note:
        One adaptation per model: a second TTAHook, or a model that adapts itself
        (``TTAEncoderDecoder``), is an error. Runs ``VERY_HIGH`` so that other hooks see the
        adapted model's outputs.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 method: dict,
                 regularizers: Sequence[dict] = (),
                 optim_wrapper: dict | None = None,
                 final_state: str = 'keep',
                 save_adapted: bool = False) -> None:
        if not isinstance(method, dict) or 'type' not in method:
            raise TypeError(f"TTAHook.method must be a dict with a 'type', got {method!r}")
        if final_state not in FINAL_STATES:
            raise ValueError(f'TTAHook.final_state must be one of {FINAL_STATES}, got '
                             f'{final_state!r}')
        self.method_cfg = copy.deepcopy(dict(method))
        self.method_cfg['regularizers'] = list(method.get('regularizers', [])) + list(
            regularizers)
        self.optim_wrapper = copy.deepcopy(optim_wrapper)
        self.final_state = final_state
        self.save_adapted = save_adapted
        self.method: BaseTTAMethod | None = None
        self.adapter: Adapter | None = None
        self._stats: TTAStatsHook | None = None
        build_method(self.method_cfg, self.optim_wrapper)  # fail on a bad config now

    def before_run(self, runner) -> None:
        # the runner loads the checkpoint after this stage: torch's allow-list first
        compat.prepare_checkpoint_loading()

    def before_test(self, runner) -> None:
        model = self._model(runner)
        self._check_alone(runner, model)
        self.method = build_method(self.method_cfg, self.optim_wrapper)
        self.adapter = build_adapter(model, self.method)
        self.adapter.attach()
        # instance attributes: only this model changes, and after_test removes them
        model.tta_method, model.tta_adapter = self.method, self.adapter
        model.test_step = self.adapter.test_step
        self._stats = (None if any(isinstance(h, TTAStatsHook) for h in runner.hooks)
                       else TTAStatsHook())
        print_log(f'TTAHook: {self.method!r} adapts {type(model).__name__} during the test',
                  logger='current')

    def before_test_epoch(self, runner) -> None:
        if self._stats is not None:
            self._stats.before_test_epoch(runner)

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # the test loop calls model.eval() after before_test: put the method's layers back
        if self.method is not None:
            self.method.apply_modes()

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict | None = None,
                        outputs: Sequence | None = None) -> None:
        if self._stats is not None:
            self._stats.after_test_iter(runner, batch_idx, data_batch, outputs)

    def after_test(self, runner) -> None:
        if self.method is None:
            return
        model = self._model(runner)
        if self.save_adapted:
            self._save(runner, model)
        if self.final_state == 'reset':
            self.method.reset()
        self.adapter.detach()
        del model.test_step, model.tta_method, model.tta_adapter
        print_log(f'TTAHook: test finished; the model keeps its '
                  f'{"adapted" if self.final_state == "keep" else "source"} weights '
                  f"(final_state='{self.final_state}')", logger='current')
        self.method, self.adapter, self._stats = None, None, None

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _check_alone(self, runner, model) -> None:
        hooks = [h for h in runner.hooks if isinstance(h, TTAHook)]
        if len(hooks) > 1:
            names = ', '.join(type(h).__name__ for h in hooks)
            raise RuntimeError(f'{len(hooks)} TTA hooks ({names}) would adapt the same model; '
                               'keep one in custom_hooks')
        if getattr(model, 'tta_adapter', None) is not None:
            raise RuntimeError(f'{type(model).__name__} already adapts itself with '
                               f'{model.tta_method!r}; a TTAHook would adapt it twice: use a '
                               'plain model type or remove the hook')

    def _save(self, runner, model) -> None:
        path = osp.join(runner.work_dir, 'adapted_weights.pth')
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        meta = dict(method=self.method.name,
                    regularizers=[type(r).__name__ for r in self.method.regularizers])
        torch.save(dict(state_dict=state, meta=meta), path)
        print_log(f'TTAHook: adapted weights saved to {path}', logger='current')


@HOOKS.register_module()
class STAGHook(TTAHook):
    """A :class:`TTAHook` whose regularizers include STAG, configured inline.

    ``dict(type='STAGHook', method=dict(type='Tent'), mode='loss', weight=2.0)`` equals
    ``dict(type='TTAHook', method=dict(type='Tent'), regularizers=[dict(type='STAG',
    mode='loss', weight=2.0)])``; the options not given keep STAG's defaults.

    Args:
        method (dict): The method STAG rides on.
        **kwargs: STAG's options (``weight``, ``space``, ``gradient``, ``weighting``,
            ``form``, ``temperature``, ``anchor_temperature``, ``use_bias``, ``anchors``,
            ``eps``; :class:`stag_seg.stag.STAG`, whose defaults apply to those not given) and
            :class:`TTAHook`'s other arguments.
    """

    def __init__(self, method: dict, **kwargs) -> None:
        options = STAG.defaults()
        stag = dict(type='STAG', **{k: kwargs.pop(k) for k in list(kwargs) if k in options})
        super().__init__(method, regularizers=[stag, *kwargs.pop('regularizers', [])], **kwargs)
