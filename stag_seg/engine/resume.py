"""What ``ContinualTestLoop`` saves to continue an interrupted stream (``--resume``).

Every ``checkpoint_interval`` steps, and when the run is preempted (SIGTERM, SIGINT), each rank
saves its state to ``<work_dir>/tta_state/<step>.rank<r>-of-<n>.pth``: the model, the method
(optimizer, EMA teacher, moving averages, generators, STAG's anchors), every random generator,
the position in the stream, the evaluator's accumulators, the records so far, the
(round, domain)'s progress and the collapse guard's history. Each file is written atomically and
checked when read (:mod:`~stag_seg.engine.state_files`); each rank keeps its last two
(:data:`KEEP_STATES`). A resumption loads the newest stream step whose state is whole on every
rank, and says which files it refused and why. A resumed run's results equal an uninterrupted
run's.
"""
from __future__ import annotations

import glob
import logging
import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.logging import print_log

from .state_files import (StateFileError, check_state, list_states, read_state, state_name,
                          write_state)

__all__ = ['KEEP_STATES', 'STATE_DIR', 'STATE_VERSION', 'StreamState', 'rng_state',
           'set_rng_state']

#: Layout version of the state (what the file holds, not how it is written).
STATE_VERSION = 3

#: The folder of the state files inside the work dir.
STATE_DIR = 'tta_state'

#: State files each rank keeps: the newest, and the one to go back to when the newest is
#: damaged (or another rank's file of its step is).
KEEP_STATES = 2


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
        self.saved_step: int | None = None

    @property
    def folder(self) -> str:
        return osp.join(self.loop.runner.work_dir, STATE_DIR)

    def _own(self) -> list[tuple[int, str]]:
        """``(step, path)`` of this rank's state files, oldest first."""
        rank, world = get_rank(), get_world_size()
        return sorted((name.step, path) for path, name in list_states(self.folder).items()
                      if (name.rank, name.world_size) == (rank, world))

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

    def save(self, round_idx: int, index: int, progress) -> str:
        """Save everything the run needs to continue after this step; return the file.

        Raises:
            OSError: the file could not be written (a full disk); the message names it and
                the previous state, which is intact.
        """
        loop = self.loop
        method = loop.method
        path = osp.join(self.folder, state_name(loop.stream_step, get_rank(), get_world_size()))
        if self.saved_step == loop.stream_step:
            return path  # saved at this step already (a preemption at a checkpoint step)
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
        try:
            os.makedirs(self.folder, exist_ok=True)
            write_state(path, state)
        except OSError as err:
            own = self._own()
            previous = own[-1][1] if own else 'none was saved before'
            raise OSError(err.errno, f'could not save the resume state {path}: '
                          f'{err.strerror or err}. The previous state is intact '
                          f'({previous})') from err
        self.saved_step = loop.stream_step
        self._prune()
        return path

    def _prune(self) -> None:
        """Keep this rank's newest :data:`KEEP_STATES` files; remove the temporary files of
        writes that a kill interrupted."""
        for _, path in self._own()[:-KEEP_STATES]:
            os.remove(path)
        for tmp in glob.glob(osp.join(self.folder, f'.*.rank{get_rank()}-of-'
                                                   f'{get_world_size()}.pth.tmp')):
            os.remove(tmp)

    def load(self) -> dict:
        """Restore the newest state that is whole on every rank into the loop (model, method,
        guard, records); returns it, for the (round, domain) it stopped in.

        Raises:
            FileNotFoundError: nothing was saved in this work dir.
            ValueError: the states belong to another process count, another stream or another
                layout, or no stream step has a whole state on every rank; the message says
                which files and why.
        """
        loop = self.loop
        self._refuse_other_runs()
        step, path, damaged, newer = self._choose()
        for rank, bad, problem in damaged:  # every rank's, so that the main process says them
            print_log(f'--resume: refused {bad}: {problem}; it is renamed {bad}.damaged (kept '
                      'for a look, never read again)', logger='current', level=logging.WARNING)
            if rank == get_rank():
                os.replace(bad, bad + '.damaged')
        for unused in newer:  # whole, but another rank's file of its step is not
            print_log(f'--resume: removed {unused}: another rank has no whole state of its '
                      'step, which is run again', logger='current', level=logging.WARNING)
            os.remove(unused)
        state = read_state(path, check=False)  # checked in _choose
        if state.get('version') != STATE_VERSION:
            raise ValueError(f'{path}: state version {state.get("version")}, this toolkit '
                             f'reads {STATE_VERSION}')
        if state['position']['stream_step'] != step:
            raise StateFileError(path, f'holds stream step {state["position"]["stream_step"]}, '
                                 f'its name says {step}')
        changed = {k: (v, self.identity().get(k)) for k, v in state['stream'].items()
                   if self.identity().get(k) != v}
        if changed:
            diff = '; '.join(f'{k}: {a!r} there, {b!r} here' for k, (a, b) in changed.items())
            raise ValueError(f'{path} was saved by a run of another stream ({diff}). Resume '
                             'with the same config and options, or run without --resume')
        self.saved_step = step
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

    def _refuse_other_runs(self) -> None:
        """Every rank refuses, alike, a folder that holds another process count's states or
        the single file of an older layout."""
        world, work_dir = get_world_size(), self.loop.runner.work_dir
        older = sorted(glob.glob(osp.join(work_dir, 'tta_state*.pth')))
        if older:
            raise ValueError(f'--resume: {older[0]} was written by an older stag_seg (state '
                             f'layout 2; this one reads {STATE_DIR}/ files of layout '
                             f'{STATE_VERSION}). Run again without --resume')
        others = sorted({name.world_size for name in list_states(self.folder).values()} -
                        {world})
        if others:
            raise ValueError(
                f'--resume: {self.folder} holds the state of a run with {others[-1]} '
                f'process(es); this run has {world}. A state cannot move to another process '
                'count: each rank saved its own share of the stream (MMEngine\'s sampler gives '
                'rank r the samples r, r+N, r+2N, ...), its part of the evaluator\'s results '
                'and its own BatchNorm statistics. Resume with the same number of processes, '
                'or run again without --resume')

    def _choose(self) -> tuple[int, str, list[tuple[int, str, str]], list[str]]:
        """The newest stream step whose state is whole on every rank: ``(step, this rank's
        file of it, [(rank, damaged file, what is wrong)] of every rank, [this rank's whole
        files of newer steps])``."""
        own = self._own()
        good, damaged = {}, []
        for step, path in reversed(own):
            try:
                check_state(path)
                good[step] = path
            except StateFileError as err:
                damaged.append((get_rank(), path, err.problem))
        mine = (sorted(good), damaged)
        ranks = all_gather_object(mine) if get_world_size() > 1 else [mine]
        steps = [s for s, _ in ranks]
        damaged = [d for _, bad in ranks for d in bad]
        common = set(steps[0]).intersection(*steps[1:])
        if not any(steps) and not damaged:
            raise FileNotFoundError(
                f'--resume: no saved state in {self.folder}; the run saves one every '
                f'test_cfg.checkpoint_interval ({self.loop.checkpoint_interval}) steps and '
                'when it is preempted. Run without --resume to start from the beginning')
        if not common:
            why = '; '.join(f'{p}: {problem}' for _, p, problem in damaged) or 'none damaged'
            held = ', '.join(f'rank {r}: {s or "none"}' for r, s in enumerate(steps))
            raise ValueError(f'--resume: no stream step has a whole state on every rank '
                             f'(whole states by step, {held}; damaged files: {why}). Run '
                             'again without --resume')
        step = max(common)
        newest = max(max(s) for s in steps if s)
        if step != newest:
            print_log(f'--resume: going back to stream step {step}, the newest whole on every '
                      f'rank (the newest saved is {newest})', logger='current',
                      level=logging.WARNING)
        return step, good[step], damaged, [good[s] for s in good if s > step]

    def restore_evaluator(self, state: dict) -> None:
        """Put the evaluator's accumulators back, on the device new results are made on."""
        param = next(self.loop.model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        for metric, results in zip(self.loop.evaluator.metrics, state['evaluator']):
            metric.results = _to_device(list(results), device)

    def remove(self) -> None:
        """The run is complete: nothing to resume. Removes this rank's state files and the
        temporary files of interrupted writes (and the folder once it is empty); files that a
        resumption refused stay, as ``*.damaged``, until the user removes them."""
        for _, path in self._own():
            os.remove(path)
        tmp = f'.*.rank{get_rank()}-of-{get_world_size()}.pth.tmp'
        for leftover in glob.glob(osp.join(self.folder, tmp)):
            os.remove(leftover)
        try:
            os.rmdir(self.folder)
        except OSError:
            pass  # another rank's files are still there, or there was no folder
