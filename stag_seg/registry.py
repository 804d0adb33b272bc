"""Registries of the kinds only stag_seg builds.

Public classes that users name in MM configs register into the upstream registries instead
(hooks and loops into MMEngine's root ``HOOKS``/``LOOPS``, segmentors and heads into
``mmseg.registry.MODELS``, datasets and transforms into mmseg's ``DATASETS``/``TRANSFORMS``).
"""
from __future__ import annotations

import copy
from typing import Any

from mmengine.registry import Registry

__all__ = ['TTA_METHODS', 'TTA_REGULARIZERS', 'build']

# TTA objectives: Source, Norm, Tent, ... (stag_seg/methods)
TTA_METHODS = Registry('tta_method', scope='stag_seg', locations=['stag_seg.methods'])
# Regularizers that ride on a method's loss: STAG (stag_seg/stag)
TTA_REGULARIZERS = Registry('tta_regularizer', scope='stag_seg', locations=['stag_seg.stag'])


def lookup(registry: Registry, name: Any, key: str) -> type:
    """The class registered as ``name``; a ``KeyError`` listing the valid names otherwise."""
    if isinstance(name, type):
        return name
    registry.import_from_location()
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise KeyError(f'{key} must be one of {sorted(registry.module_dict)}, got {name!r}')
    return cls


def build(registry: Registry, cfg: dict, key: str) -> Any:
    """Instantiate ``cfg`` from our own registry, whatever the caller's default scope.

    (MMEngine's ``Registry.build`` would look for the caller's scope, say ``mmseg``, in our
    registry tree first and warn that it is not there.)
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f"{key} must be a dict with a 'type', got {cfg!r}")
    args = copy.deepcopy(dict(cfg))
    cls = lookup(registry, args.pop('type'), f'{key}.type')
    return cls(**args)
