"""The config of one run: a config file, the overlays that make a setting or a model family, the
command line's options, then the two rules every run follows (:func:`prepare_config`).

An overlay is a config file merged over another in order, by the rules of a child config over
its ``_base_``: dicts merge key by key, ``_delete_=True`` replaces a dict, other values (lists
among them) replace. A dict whose keys are list indices (``{'0': dict(...)}``) merges into those
items of the list it lands on, as ``--cfg-options a.0.b=...`` does. The Digits-C settings and
model families are overlays (``configs/_base_/settings/``, ``configs/_base_/families/``).

:func:`prepare_config` then applies, in this one place for ``tools/test_tta.py`` and
``tools/run_suite.py`` alike:

- the seed: every key the config names in ``seed_keys`` (the stream's order, a seeded subset)
  takes the value of ``randomness.seed``, so one value seeds the whole run;
- the learning rate: a config that states ``lr_scaling`` states
  ``model.adapt_optim_wrapper.optimizer.lr`` at ``lr_scaling.reference_batch_size``; it is
  scaled to ``test_dataloader.batch_size`` by :func:`stag_seg.engine.scaled_lr` with the
  rule's arguments.
"""
from __future__ import annotations

import os.path as osp
from collections.abc import Sequence

from mmengine.config import Config

from ..dotted import has_key, set_key
from .lr_scaling import scaled_lr

__all__ = ['TEMPLATE_KEYS', 'build_config', 'check_options', 'merge_overlays', 'prepare_config']

#: Top-level keys the configs use as templates for model.* (``{{_base_.tta_method}}``); editing
#: them on the command line would change nothing, so it is refused with the right key.
TEMPLATE_KEYS = {'tta_method': 'model.tta_method', 'adapt_optim_wrapper':
                 'model.adapt_optim_wrapper', 'stag': 'model.tta_method.regularizers',
                 'fisher_data': 'model.tta_method.fisher_data', 'corruptions': 'test_cfg.domains'}

#: The arguments of :func:`stag_seg.engine.scaled_lr` that ``lr_scaling`` may state.
LR_SCALING_KEYS = ('reference_batch_size', 'below_32', 'at_1')


def check_options(options: dict | None) -> None:
    """Refuse ``--cfg-options`` keys that only edit a template (see :data:`TEMPLATE_KEYS`).

    Raises:
        ValueError: naming the key and the key to set instead.
    """
    for key in options or {}:
        first = key.split('.')[0]
        if first in TEMPLATE_KEYS:
            raise ValueError(f'--cfg-options {key}: `{first}` is only the template the config '
                             f'copied into the model; set {TEMPLATE_KEYS[first]}... instead')


def _check_list_items(overlay: dict, target: object, path: str, where: str) -> None:
    """Raise where an overlay's list-index dict (``{'0': ...}``) lands on something not a list."""
    for key, value in overlay.items():
        here = f'{where}.{key}' if where else str(key)
        if isinstance(target, (list, tuple)) and str(key).isdigit():
            if int(key) >= len(target):
                raise KeyError(f'overlay {path}: {here} is item {key} of a list of '
                               f'{len(target)} in the config; the overlay is for configs '
                               'whose list has that item')
            child = target[int(key)]
        elif isinstance(target, dict):
            child = target.get(key)
        else:
            child = None
        if not isinstance(value, dict):
            continue
        if value and all(str(k).isdigit() for k in value) and \
                not isinstance(child, (list, tuple)):
            raise ValueError(
                f'overlay {path}: {here}={value!r} merges into list items, but the config\'s '
                f'{here} is {type(child).__name__} {child!r}, not a list; apply the overlay '
                'to a config that has that list (a Digits-C config, for the Digits-C '
                'settings)')
        if child is not None and not value.get('_delete_', False):
            _check_list_items(value, child, path, here)


def merge_overlays(cfg: Config, overlays: Sequence[str] = ()) -> Config:
    """Merge the config files ``overlays`` over ``cfg`` in order (in place; returned too).

    Args:
        cfg (Config): The config (its ``filename`` stays the same).
        overlays (Sequence[str]): Config files, each merged as a child config over its
            ``_base_`` (``_delete_`` and list-index keys honoured).

    Returns:
        Config: ``cfg``.

    Raises:
        FileNotFoundError: an overlay does not exist.
        ValueError: an overlay's list-index dict lands on something that is not a list.
    """
    for path in overlays:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'overlay {path} not found: give a config file, e.g. '
                'configs/_base_/settings/digits-c_label-shift.py')
        overlay = Config.fromfile(path).to_dict()
        _check_list_items(overlay, cfg.to_dict(), path, '')
        cfg.merge_from_dict(overlay)
    return cfg


def _apply_seed(cfg: Config) -> None:
    """Give every key of ``seed_keys`` the value of ``randomness.seed``."""
    keys = cfg.get('seed_keys') or []
    if not keys:
        return
    if isinstance(keys, str):
        raise TypeError(f'seed_keys must be a list of dotted keys, got the string {keys!r}; '
                        f'write seed_keys = [{keys!r}]')
    seed = (cfg.get('randomness') or {}).get('seed')
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f'seed_keys {list(keys)} follow randomness.seed, which is {seed!r}; '
                         'set an int, e.g. --cfg-options randomness.seed=0')
    for key in keys:
        set_key(cfg, key, seed, what='seed_keys')


def _apply_lr_scaling(cfg: Config) -> None:
    """Scale ``model.adapt_optim_wrapper.optimizer.lr`` to the batch by ``lr_scaling``."""
    rule = cfg.get('lr_scaling')
    optim = (cfg.get('model') or {}).get('adapt_optim_wrapper')
    if rule is None or optim is None:
        return  # no rule stated, or nothing that learns (Source, Norm)
    rule = dict(rule)
    applied = rule.pop('applied', None)
    unknown = sorted(set(rule) - set(LR_SCALING_KEYS))
    if unknown:
        raise KeyError(f'lr_scaling.{unknown[0]}={rule[unknown[0]]!r}: not an argument of '
                       f'stag_seg.engine.scaled_lr; lr_scaling takes {", ".join(LR_SCALING_KEYS)}')
    if 'lr' not in (optim.get('optimizer') or {}):
        raise KeyError('lr_scaling needs model.adapt_optim_wrapper.optimizer.lr, which the '
                       'config does not set; state the lr, or drop lr_scaling')
    batch_size = (cfg.get('test_dataloader') or {}).get('batch_size')
    if not isinstance(batch_size, int):
        raise ValueError(f'lr_scaling scales to test_dataloader.batch_size, which is '
                         f'{batch_size!r}; set an int batch size')
    lr = optim.optimizer.lr
    if applied is not None and lr == applied.get('lr'):
        lr = applied['stated_lr']  # prepared before (a dumped config): start from the stated lr
    optim.optimizer.lr = scaled_lr(lr, batch_size, **rule)
    # what was done, so that preparing this config again (as dumped) changes nothing
    cfg.lr_scaling.applied = dict(batch_size=batch_size, stated_lr=lr,
                                  lr=optim.optimizer.lr)


def prepare_config(cfg: Config) -> Config:
    """Apply the seed and the learning-rate rule of the module docstring (in place).

    Call it after every other edit of the config (overlays, ``--cfg-options``, the seed).

    Args:
        cfg (Config): A merged config.

    Returns:
        Config: ``cfg``.
    """
    _apply_seed(cfg)
    _apply_lr_scaling(cfg)
    return cfg


def build_config(config: str,
                 overlays: Sequence[str] = (),
                 cfg_options: dict | None = None,
                 seed: int | None = None,
                 skip_absent: Sequence[str] = ()) -> Config:
    """The config of one run, in the order ``tools/test_tta.py`` builds it.

    Args:
        config (str): The config file.
        overlays (Sequence[str]): Config files merged over it in order (a model family, a
            setting).
        cfg_options (dict, optional): ``--cfg-options``, merged after the overlays.
        seed (int, optional): ``randomness.seed`` of the run (the config's own when None).
        skip_absent (Sequence[str]): Dotted keys: options under one of them are left out when
            the config has no such key (options meant for other configs of a suite).

    Returns:
        Config: The merged config, prepared (:func:`prepare_config`).
    """
    cfg = Config.fromfile(config)
    merge_overlays(cfg, overlays)
    if cfg_options:
        check_options(cfg_options)
        merged = cfg.to_dict()
        cfg.merge_from_dict({
            k: v for k, v in cfg_options.items()
            if not any((k == part or k.startswith(part + '.')) and not has_key(merged, part)
                       for part in skip_absent)})
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    return prepare_config(cfg)
