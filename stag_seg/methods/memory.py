"""RoTTA's category-balanced memory bank with timeliness and uncertainty (CSTU).

Yuan et al., "Robust Test-Time Adaptation in Dynamic Scenarios", CVPR 2023, Sec. 3.3;
reference: BIT-DA/RoTTA ``core/utils/memory.py`` (the same in mariodoebler/test-time-adaptation
``rotta.py``). Every rule below is the reference's, including the ones that read like accidents:

- a class under its share ``capacity / num_classes`` (a float) takes a new sample while the
  bank has room; when it is full, the sample must beat the worst-scored item of the majority
  classes (every class with the largest count), which is then evicted;
- a class at or over its share: the sample must beat that class's worst item;
- "worst" is the largest score ``lambda_t / (1 + exp(-age / capacity)) + lambda_u * u / ln C``
  (an old or uncertain item); ties go to the item found last; a new sample scores with age 0 and
  must score strictly less than the item it evicts;
- after every attempt, stored or not, every item ages by one, the new one included.

Items are kept in class order, then in the order they came; :meth:`contents` returns them so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

__all__ = ['CategoryBalancedMemory', 'MemoryItem']


@dataclass
class MemoryItem:
    """One stored sample: its (preprocessed) image, its uncertainty and its age in attempts."""
    data: Tensor
    uncertainty: float
    age: int = 0


class CategoryBalancedMemory:
    """A bank of at most ``capacity`` samples, balanced over the predicted classes.

    Args:
        capacity (int): How many samples it holds. Defaults to 64.
        num_classes (int): The number of classes (at least 2).
        lambda_t (float): Weight of the timeliness (age) term of the score. Defaults to 1.0.
        lambda_u (float): Weight of the uncertainty term. Defaults to 1.0.
    """

    def __init__(self, capacity: int, num_classes: int, lambda_t: float = 1.0,
                 lambda_u: float = 1.0) -> None:
        if capacity < 1:
            raise ValueError(f'the memory capacity must be >= 1, got {capacity}')
        if num_classes < 2:
            raise ValueError(f'the memory needs at least 2 classes (its score divides by '
                             f'ln C), got {num_classes}')
        self.capacity = capacity
        self.num_classes = num_classes
        self.per_class = capacity / num_classes
        self.lambda_t = lambda_t
        self.lambda_u = lambda_u
        self.data: list[list[MemoryItem]] = [[] for _ in range(num_classes)]

    def __len__(self) -> int:
        return sum(len(items) for items in self.data)

    def score(self, age: int, uncertainty: float) -> float:
        """The heuristic score of an item: large for old and uncertain ones (Eq. 7)."""
        return (self.lambda_t * 1 / (1 + math.exp(-age / self.capacity))
                + self.lambda_u * uncertainty / math.log(self.num_classes))

    def add(self, data: Tensor, label: int, uncertainty: float) -> bool:
        """Offer a sample predicted as ``label``; returns whether it was stored."""
        stored = self._make_room(label, self.score(0, uncertainty))
        if stored:
            self.data[label].append(MemoryItem(data, uncertainty))
        for items in self.data:
            for item in items:
                item.age += 1
        return stored

    def contents(self) -> tuple[list[Tensor], list[float]]:
        """The stored samples and their ages over ``capacity``, in class order, then in order
        of arrival."""
        items = [item for items in self.data for item in items]
        return [item.data for item in items], [item.age / self.capacity for item in items]

    def _make_room(self, label: int, score: float) -> bool:
        if len(self.data[label]) < self.per_class:
            if len(self) < self.capacity:
                return True
            counts = [len(items) for items in self.data]
            majority = [c for c, count in enumerate(counts) if count == max(counts)]
            return self._evict(majority, score)
        return self._evict([label], score)

    def _evict(self, classes: list[int], score: float) -> bool:
        """Evict the worst item of ``classes`` if it scores more than ``score``."""
        worst = None
        for cls in classes:
            for index, item in enumerate(self.data[cls]):
                value = self.score(item.age, item.uncertainty)
                if worst is None or value >= worst[0]:
                    worst = (value, cls, index)
        if worst is None:
            return True
        if worst[0] > score:
            self.data[worst[1]].pop(worst[2])
            return True
        return False

    def state_dict(self) -> dict:
        """Tensors and plain values, for a resumed run."""
        return dict(items=[[(item.data, item.uncertainty, item.age) for item in items]
                           for items in self.data])

    def load_state_dict(self, state: dict) -> None:
        self.data = [[MemoryItem(*entry) for entry in items] for items in state['items']]
