"""What ``ContinualTestLoop`` saves to continue an interrupted stream (``--resume``).

One file per rank, ``<work_dir>/tta_state.pth`` (``tta_state_rank<k>.pth`` with several
processes), written atomically every ``checkpoint_interval`` steps: the model, the method
(optimizer, EMA teacher, moving averages, generators, STAG's anchors), every random generator,
the position in the stream, the evaluator's accumulators, the records so far, the
(round, domain)'s progress and the collapse guard's history. A resumed run's results equal an
uninterrupted run's.
"""
from __future__ import annotations

import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from mmengine.logging import print_log

from ..compat import load_checkpoint

__all__ = ['STATE_VERSION', 'StreamState', 'rng_state', 'set_rng_state']

#: Layout version of the state files.
STATE_VERSION = 2


def rng_state() -> dict:
    """Every random number generator the stream draws from (plain values and tensors)."""
    np_state = np.random.get_state()
    return dict(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        numpy=dict(kind=np_state[0], keys=torch.from_numpy(np_state[1].astype(np.int64)),
                   pos=int(np_state[2]), has_gauss=int(np_state[3]),
                   cached=float(np_state[4])),
        python=random.getstate())


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    np_state = state['numpy']
    np.random.set_state((np_state['kind'], np_state['keys'].numpy().astype(np.uint32),
                         np_state['pos'], np_state['has_gauss'], np_state['cached']))
    random.setstate(state['python'])


def _to_device(value, device: torch.device):
    """``value`` with every tensor inside it (lists, tuples, dicts) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


class StreamState:
    """Saves and restores the state of one ``ContinualTestLoop``.

    Args:
        loop (ContinualTestLoop): The loop whose stream is saved.
    """

    def __init__(self, loop) -> None:
        self.loop = loop

    @property
    def path(self) -> str:
        rank, world = get_rank(), get_world_size()
        name = 'tta_state.pth' if world == 1 else f'tta_state_rank{rank}.pth'
        return osp.join(self.loop.runner.work_dir, name)

    def identity(self) -> dict:
        """What must not change between a run and its resumption."""
        loop = self.loop
        method = loop.method
        return dict(rounds=loop.rounds, domains=[n for n, _ in loop.domains],
                    world_size=get_world_size(), seed=loop.runner.seed,
                    checkpoint=str(loop.runner.cfg.get('load_from')),
                    method=repr(method) if method is not None else 'Source',
                    batch_size=[loader.batch_size for _, loader in loop.domains],
                    on_bad_input=loop.on_bad_input, episodic=loop.episodic,
                    optimizer_reset=loop.optimizer_reset)

    def save(self, round_idx: int, index: int, progress) -> None:
        """Save everything the run needs to continue after this step, atomically."""
        loop = self.loop
        method = loop.method
        state = dict(
            version=STATE_VERSION,
            stream=self.identity(),
            position=dict(round=round_idx, domain_index=index,
                          next_step=progress.next_step, stream_step=loop.stream_step),
            model=loop.model.state_dict(),
            method=method.state_dict() if method is not None and method.configured else None,
            rng=rng_state(),
            evaluator=[list(m.results) for m in loop.evaluator.metrics],
            records=loop.results.records, seconds=loop.results.seconds,
            progress=progress.state_dict(),
            guard=loop.guard.guard.state_dict() if loop.guard is not None else None)
        tmp = self.path + '.tmp'
        with open(tmp, 'wb') as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # a kill leaves either the old state or the new one, whole

    def load(self) -> dict:
        """Restore the saved state of an interrupted run in this work dir into the loop (model,
        method, guard, records); returns it, for the (round, domain) it stopped in."""
        loop, path = self.loop, self.path
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'--resume: no saved state at {path}; the run saves one every '
                f'test_cfg.checkpoint_interval ({loop.checkpoint_interval}) steps. Run without '
                '--resume to start from the beginning')
        state = load_checkpoint(path)
        if state.get('version') != STATE_VERSION:
            raise ValueError(f'{path}: state version {state.get("version")}, this toolkit '
                             f'reads {STATE_VERSION}')
        if state['stream'] != self.identity():
            raise ValueError(f'{path} was saved by a run of another stream: {state["stream"]}, '
                             f'this run is {self.identity()}')
        if get_world_size() > 1:
            steps = torch.tensor([state['position']['stream_step']] * 2, dtype=torch.float64)
            steps[1] = -steps[1]
            all_reduce(steps, op='max')  # the largest step and minus the smallest
            if steps[0] != -steps[1]:
                raise ValueError(f'--resume: the ranks saved different positions (stream steps '
                                 f'{int(-steps[1])} to {int(steps[0])}); the run was killed '
                                 'while saving, start it again without --resume')
        adapter = getattr(loop.model, 'tta_adapter', None)
        if adapter is not None and not adapter.attached:
            adapter.attach()  # from the source weights, as the first run did
        loop.model.load_state_dict(state['model'])
        if loop.method is not None and state['method'] is not None:
            loop.method.load_state_dict(state['method'])
        if loop.guard is not None and state['guard'] is not None:
            loop.guard.guard.load_state_dict(state['guard'])
        loop.results.records = state['records']
        loop.results.seconds = state['seconds']
        pos = state['position']
        print_log(f'resumed from {path}: round {pos["round"]}, domain '
                  f'{loop.domains[pos["domain_index"]][0]!r}, step {pos["next_step"]} '
                  f'(stream step {pos["stream_step"]})', logger='current')
        return state

    def restore_evaluator(self, state: dict) -> None:
        """Put the evaluator's accumulators back, on the device new results are made on."""
        param = next(self.loop.model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        for metric, results in zip(self.loop.evaluator.metrics, state['evaluator']):
            metric.results = _to_device(list(results), device)

    def remove(self) -> None:
        """The run is complete: nothing to resume."""
        if osp.isfile(self.path):
            os.remove(self.path)
