"""Packages: the toolkit's optional extras, and forks that publish the upstream modules under
other distribution names."""
from __future__ import annotations

import importlib
import types

__all__ = ['RENAMED_DISTRIBUTIONS', 'map_renamed_distributions', 'require_extra']

#: Distributions that forks publish under another name: (upstream, fork) pairs.
RENAMED_DISTRIBUTIONS = (('mmsegmentation', 'onedl-mmsegmentation'),
                         ('mmpretrain', 'onedl-mmpretrain'))


def map_renamed_distributions() -> dict[str, str]:
    """Let ``mmseg::``/``mmpretrain::`` config paths resolve to forks that keep the import
    name but publish another distribution (the OneDL ones); a no-op with the originals.

    Returns:
        dict: ``{module: distribution}`` of what was remapped.
    """
    from importlib.metadata import PackageNotFoundError, version
    try:
        from mmengine.config.utils import MODULE2PACKAGE
    except ImportError:
        return {}
    changed = {}
    for module, package in list(MODULE2PACKAGE.items()):
        fork = dict(RENAMED_DISTRIBUTIONS).get(package)
        if fork is None:
            continue
        try:
            version(package)
            continue  # the original is installed
        except PackageNotFoundError:
            pass
        try:
            version(fork)
        except PackageNotFoundError:
            continue
        MODULE2PACKAGE[module] = changed[module] = fork
    return changed


def require_extra(module: str, extra: str, what: str) -> types.ModuleType:
    """Import ``module``, which only the package extra ``extra`` installs.

    Raises:
        ModuleNotFoundError: naming ``what`` needs it and the command that installs it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split('.')[0] != module.split('.')[0]:
            raise  # the module is there but one of its own imports is missing
        raise ModuleNotFoundError(
            f"{what} needs the '{module}' module: pip install 'stag_seg[{extra}]'",
            name=module) from None
