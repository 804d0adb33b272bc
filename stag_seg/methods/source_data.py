"""Source images that a method reads besides the test stream: EATA's Fisher set, RMT's
prototypes, warm-up and replay.

A config names them as ``dict(dataloader=dict(...))``, built with MMEngine's
``Runner.build_dataloader`` (a built ``DataLoader`` is taken as it is), and each batch goes
through the adapted model's own data preprocessor.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ['SourceStream', 'build_source_loader', 'inputs_and_labels']


def build_source_loader(cfg: dict, owner: str):
    """The data loader of ``cfg['dataloader']``.

    Raises:
        ValueError: its data set is empty (``owner`` names the config key in the message).
    """
    from mmengine.registry import DATASETS
    from mmengine.runner import Runner
    loader = cfg['dataloader']
    if not isinstance(loader, dict):
        return Runner.build_dataloader(loader)
    loader = copy.deepcopy(dict(loader))
    if isinstance(loader['dataset'], dict):
        loader['dataset'] = DATASETS.build(loader['dataset'])
    if len(loader['dataset']) == 0:
        raise ValueError(f'{owner} yielded no images: its dataset is empty '
                         f'({cfg["dataloader"].get("dataset")})')
    return Runner.build_dataloader(loader)


def inputs_and_labels(model: nn.Module, batch: dict, owner: str) -> tuple[Tensor, Tensor]:
    """A source batch through ``model``'s data preprocessor: (N, 3, H, W) inputs and (N,)
    labels.

    Raises:
        ValueError: the data samples carry no ``gt_label``.
    """
    data = model.data_preprocessor(batch, False)
    samples = data['data_samples']
    if not samples or 'gt_label' not in samples[0]:
        raise ValueError(f'{owner} must give labelled images (data samples with gt_label)')
    labels = torch.cat([s.gt_label.view(-1)[:1] for s in samples])
    return data['inputs'], labels.to(data['inputs'].device).long()


class SourceStream:
    """Endless source batches: pass after pass over a loader, each pass a new epoch of its
    sampler (a new shuffle with MMEngine's ``DefaultSampler``), as a reference that re-creates
    its iterator when one ends.

    Args:
        loader: A data loader (:func:`build_source_loader`).
        owner (str): The config key, for messages.
    """

    def __init__(self, loader, owner: str) -> None:
        self.loader = loader
        self.owner = owner
        self.epoch, self.drawn = 0, 0
        self._iter = None

    def next(self) -> dict:
        """The next batch as the loader gives it."""
        batch = next(self._iter, None) if self._iter is not None else None
        if batch is None:
            sampler = getattr(self.loader, 'sampler', None)
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(self.epoch)
            self._iter, self.epoch, self.drawn = iter(self.loader), self.epoch + 1, 0
            batch = next(self._iter, None)
            if batch is None:
                raise ValueError(f'{self.owner} yielded no images: its dataset is empty')
        self.drawn += 1
        return batch

    def position(self) -> tuple[int, int]:
        """(passes started, batches drawn in the current one), for a resumed run."""
        return self.epoch, self.drawn

    def seek(self, position: tuple[int, int]) -> None:
        """Go back to a :meth:`position` (the same pass, the same batches next)."""
        epoch, drawn = position
        self.epoch, self._iter, self.drawn = max(epoch - 1, 0), None, 0
        for _ in range(drawn if epoch > 0 else 0):
            self.next()
