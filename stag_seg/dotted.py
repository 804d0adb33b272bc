"""Dotted keys into nested configs (``'model.tta_method.regularizers.0.weight'``), the way
``--cfg-options`` names them: a part that is a number indexes a list."""
from __future__ import annotations

from typing import Any

__all__ = ['get_key', 'has_key', 'set_key']


def _container(node: Any) -> bool:
    return hasattr(node, 'keys') and hasattr(node, '__getitem__')


def _walk(cfg: Any, key: str, what: str, create_last: bool) -> tuple[Any, Any]:
    """The node that holds the last part of ``key``, and that part (an int for a list)."""
    parts = key.split('.')
    node = cfg
    for i, part in enumerate(parts):
        where = '.'.join(parts[:i + 1])
        last = i == len(parts) - 1
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(f'{what}: {key!r} has no item {part!r} at {where!r} (a list of '
                               f'{len(node)})')
            index: Any = int(part)
        elif _container(node):
            if part not in node and not (last and create_last):
                raise KeyError(f'{what}: the config has no {where!r} (in {key!r})')
            index = part
        else:
            raise KeyError(f'{what}: {key!r} goes through {where!r}, which is neither a dict '
                           'nor a list')
        if last:
            return node, index
        node = node[index]
    raise KeyError(f'{what}: empty key')


def get_key(cfg: Any, key: str, what: str = 'key') -> Any:
    """``cfg[a][b]...`` for the dotted ``key``.

    Raises:
        KeyError: naming ``what`` (the option the key came from), the key and where it failed.
    """
    node, index = _walk(cfg, key, what, create_last=False)
    return node[index]


def has_key(cfg: Any, key: str) -> bool:
    """Whether the dotted ``key`` exists in ``cfg``."""
    try:
        get_key(cfg, key)
    except KeyError:
        return False
    return True


def set_key(cfg: Any, key: str, value: Any, what: str = 'key', create: bool = False) -> None:
    """``cfg[a][b]... = value`` for the dotted ``key``; with ``create`` the last part may be a
    new key of a dict, otherwise every part must exist.

    Raises:
        KeyError: as :func:`get_key`.
    """
    node, index = _walk(cfg, key, what, create_last=create)
    node[index] = value
