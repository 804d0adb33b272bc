"""The domains of a stream: each entry of ``test_cfg.domains`` turned into its dataloader config.

Beside :mod:`~stag_seg.datasets.streams` (which orders the samples inside a domain), this is how
a stream's domain order is written in a config: by name (``'fog'`` sets the dataset's
``condition``), by the dataset keys that change, or by a whole dataloader.
"""
from __future__ import annotations

import copy
from typing import Any

from ..dotted import set_key

__all__ = ['domain_dataloader']


def domain_dataloader(domain: str | dict, template: Any, domain_key: str) -> tuple[str, dict]:
    """``(name, dataloader config)`` of one entry of ``test_cfg.domains``.

    Args:
        domain (str | dict): A name ``'fog'``, which sets ``dataset[domain_key] = 'fog'`` in a
            copy of ``template``; ``dict(name=..., dataset=dict(...))``, which updates the
            template's dataset with those keys; or ``dict(name=..., dataloader=dict(...))``,
            the domain's whole dataloader.
        template (dict): The test dataloader config the domains derive from.
        domain_key (str): The dataset argument a name sets; a dotted path reaches into a
            wrapped data set (``'datasets.0.corruption'``).

    Raises:
        TypeError: ``template`` is not a config dict where a domain derives from it, or an
            entry is neither a name nor a dict with a ``'name'``.
        KeyError: ``domain_key`` does not lead to a key of the dataset config.
    """
    if isinstance(domain, dict) and 'dataloader' in domain:
        return str(domain['name']), copy.deepcopy(domain['dataloader'])
    if not isinstance(template, dict):
        raise TypeError('ContinualTestLoop derives each domain from the test_dataloader '
                        'config dict; give each domain a full `dataloader` instead')
    cfg = copy.deepcopy(template)
    if isinstance(domain, str):
        set_key(cfg['dataset'], domain_key, domain, what=f'test_cfg.domain_key {domain_key!r}',
                create=True)
        return domain, cfg
    if not isinstance(domain, dict) or 'name' not in domain:
        raise TypeError(f'each entry of test_cfg.domains must be a name or a dict with a '
                        f"'name', got {domain!r}")
    cfg['dataset'].update(copy.deepcopy(domain.get('dataset', {domain_key: domain['name']})))
    return str(domain['name']), cfg

