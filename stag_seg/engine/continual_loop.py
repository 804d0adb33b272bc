"""``ContinualTestLoop``: a test loop over a stream of domains, round after round."""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import os.path as osp
import platform
import random
import sys
import time
from typing import Iterator, Sequence

import numpy as np
import torch
from mmengine.dist import all_reduce, get_rank, get_world_size, is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import LOOPS
from mmengine.runner import TestLoop
from mmengine.runner.amp import autocast
from mmengine.utils.dl_utils import collect_env
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..compat import load_checkpoint
from ..evaluation.records import RunningMetric, StreamResults
from ..evaluation.report import format_records, write_results
from .adapt import all_ranks
from .guards import BAD_INPUT_POLICIES, BadInputError, CollapseGuard, batch_files, check_batch

__all__ = ['ContinualTestLoop']

OPTIMIZER_RESETS = ('never', 'domain')


@LOOPS.register_module()
class ContinualTestLoop(TestLoop):
    """Evaluate online adaptation on a stream of domains (fog, night, ...) for several rounds.

    Every (round, domain) is scored by the configured evaluator (MMSeg's ``IoUMetric``, say)
    on the predictions the model made *before* it updated on each batch. The model is never
    reset in continual mode; ``episodic=True`` resets it to the source before every domain.
    Results go to ``<work_dir>/tta_results.{json,csv,md,png}`` and ``environment.json`` (rank 0).

    Args:
        runner (Runner): The runner.
        dataloader (dict): The template dataloader config (the config's ``test_dataloader``);
            each domain derives its own from it.
        evaluator (dict | list | Evaluator): The evaluator, reused for every (round, domain).
        domains (Sequence[str | dict]): The domain order of one round. A string ``name`` sets
            ``dataset[domain_key] = name`` in a copy of the template; a dict ``dict(name=...,
            dataset=dict(...))`` updates the template's dataset with those keys; a dict
            ``dict(name=..., dataloader=dict(...))`` gives the domain's whole dataloader.
        rounds (int): How many times the stream repeats. Defaults to 1.
        episodic (bool): Reset to the source model before each domain. Defaults to False.
        optimizer_reset (str): ``'never'`` (default): one optimizer for the whole stream.
            ``'domain'``: the optimizer's state (momentum, Adam's moments) is fresh at every
            domain visit while the weights carry on, as in the CoTTA segmentation code, which
            builds a new Adam inside each per-domain call (40 over 10 rounds of ACDC).
        domain_key (str): The dataset argument a domain name sets. Defaults to
            ``'condition'`` (``ACDCDataset``). A dotted path reaches into a wrapped data set:
            ``'datasets.0.corruption'`` for a ``StreamDataset`` around a ``CIFARCDataset``.
        metric_key (str): The evaluator's key of the headline metric; ``'mIoU'`` or
            ``'accuracy/top1'``. Defaults to ``'mIoU'``.
        progress (bool): Show a progress bar (images/s, running metric). Defaults to True.
        fp16 (bool): Autocast the forward. Defaults to False.
        curve_points (int): At most this many points per (round, domain) of the running
            metric recorded in the results (``curve``) and written, with the method's
            statistics (loss, STAG loss, fraction selected), to the runner's visualizer
            backends. Defaults to 20. With several processes the curve is the main process's
            share of each domain.
        on_bad_input (str): ``'error'`` (default): an unreadable image, a label map of the
            wrong size or with ids outside the classes, or a NaN/Inf in the logits, loss or
            gradients stops the run with an error naming the file, the domain and the step,
            after the results so far are written to ``tta_results.partial.json``. ``'skip'``:
            an unreadable or unscorable item is skipped (never scored, never adapted on), a
            non-finite step keeps its prediction but makes no update; each is logged and
            counted in its record (``bad_inputs``, ``skipped_items``, ``nonfinite_steps``).
            Either way a non-finite value never reaches the weights.
        collapse_guard (dict, optional): Arguments of a
            :class:`~stag_seg.engine.guards.CollapseGuard` (``entropy_below``,
            ``min_classes``, ``every``, ...): reset the model to the source when it fires,
            counted in the record (``guard_resets``). Off by default.
        checkpoint_interval (int): Every this many steps the whole state is saved atomically to ``<work_dir>/tta_state.pth``: the
            model, the method (optimizer, EMA teacher, moving averages, generators, STAG's
            anchors), the random generators, the position in the stream, the evaluator's
            accumulators and the records so far. 0 never saves. Defaults to 500.
        resume (bool): Continue from that state (``tools/test_tta.py --resume``); the
            results equal an uninterrupted run's. Defaults to False.

    Scalars go through MMEngine's visualizer, so ``vis_backends`` in the config chooses where:
    ``LocalVisBackend`` (``<log_dir>/vis_data/scalars.json``, the default), TensorBoard or W&B.
    Their step is the adaptation step (batch) in the stream.
    """

    def __init__(self,
                 runner,
                 dataloader: dict,
                 evaluator,
                 domains: Sequence[str | dict],
                 rounds: int = 1,
                 episodic: bool = False,
                 optimizer_reset: str = 'never',
                 domain_key: str = 'condition',
                 metric_key: str = 'mIoU',
                 progress: bool = True,
                 fp16: bool = False,
                 curve_points: int = 20,
                 on_bad_input: str = 'error',
                 collapse_guard: dict | None = None,
                 checkpoint_interval: int = 500,
                 resume: bool = False) -> None:
        if not domains:
            raise ValueError('ContinualTestLoop needs at least one domain in test_cfg.domains')
        if not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f'test_cfg.rounds must be an int >= 1, got {rounds!r}')
        if not isinstance(curve_points, int) or curve_points < 1:
            raise ValueError(f'test_cfg.curve_points must be an int >= 1, got {curve_points!r}')
        if on_bad_input not in BAD_INPUT_POLICIES:
            raise ValueError(f'test_cfg.on_bad_input must be one of {BAD_INPUT_POLICIES}, got '
                             f'{on_bad_input!r}')
        if optimizer_reset not in OPTIMIZER_RESETS:
            raise ValueError(f'test_cfg.optimizer_reset must be one of {OPTIMIZER_RESETS}, got '
                             f'{optimizer_reset!r}')
        self.guard = CollapseGuard(**collapse_guard) if collapse_guard else None
        if not isinstance(checkpoint_interval, int) or checkpoint_interval < 0:
            raise ValueError(f'test_cfg.checkpoint_interval must be an int >= 0 (0: never), '
                             f'got {checkpoint_interval!r}')
        self.checkpoint_interval = checkpoint_interval
        self.resume = resume
        specs = [self._domain_spec(d, dataloader, domain_key) for d in domains]
        names = [name for name, _ in specs]
        if len(set(names)) != len(names):
            raise ValueError(f'test_cfg.domains has repeated names: {names}')
        super().__init__(runner, specs[0][1], evaluator, fp16)
        seed = runner.seed
        diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
        self.domains = [(names[0], self.dataloader)] + [
            (name, runner.build_dataloader(cfg, seed=seed, diff_rank_seed=diff_rank_seed))
            for name, cfg in specs[1:]]
        for name, loader in self.domains:
            if len(loader.dataset) == 0:
                raise ValueError(f'domain {name!r} has no samples; check its dataset config')
        self.rounds = rounds
        self.episodic = episodic
        self.optimizer_reset = optimizer_reset
        self.metric_key = metric_key
        self.progress = progress
        self.curve_points = curve_points
        self.on_bad_input = on_bad_input
        self.last_outputs: Sequence | None = None
        self.results: StreamResults | None = None
        # where the stream is: hooks (the --show-dir one) read these
        self.round_idx, self.domain, self.stream_step = 0, '', 0

    @staticmethod
    def _domain_spec(domain: str | dict, template: dict | DataLoader,
                     domain_key: str) -> tuple[str, dict]:
        """``(name, dataloader config)`` of one entry of ``domains``."""
        if isinstance(domain, dict) and 'dataloader' in domain:
            return str(domain['name']), copy.deepcopy(domain['dataloader'])
        if not isinstance(template, dict):
            raise TypeError('ContinualTestLoop derives each domain from the test_dataloader '
                            'config dict; give each domain a full `dataloader` instead')
        cfg = copy.deepcopy(template)
        if isinstance(domain, str):
            _set_key(cfg['dataset'], domain_key, domain)
            return domain, cfg
        if not isinstance(domain, dict) or 'name' not in domain:
            raise TypeError(f'each entry of test_cfg.domains must be a name or a dict with a '
                            f"'name', got {domain!r}")
        cfg['dataset'].update(copy.deepcopy(domain.get('dataset', {domain_key: domain['name']})))
        return str(domain['name']), cfg

    def run(self) -> dict:
        """Run the whole stream; returns ``{'r1/fog/mIoU': ..., 'mean/mIoU': ...}``."""
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        metric = self.metric_key.split('/')[0]
        self.results = StreamResults(metric, self.rounds, [n for n, _ in self.domains],
                                     self.metric_key)
        total = self.rounds * sum(len(loader) for _, loader in self.domains)
        bar = tqdm(total=total, unit='batch', disable=not (self.progress and is_main_process()),
                   mininterval=0.5 if sys.stderr.isatty() else 15, dynamic_ncols=True)
        running = RunningMetric()
        self.stream_step = 0
        state = self._load_state() if self.resume else None
        if state is not None:
            bar.update(state['position']['stream_step'])
        for round_idx in range(1, self.rounds + 1):
            for index, (domain, loader) in enumerate(self.domains):
                resume_here = None
                if state is not None:
                    at = (state['position']['round'], state['position']['domain_index'])
                    if (round_idx, index) < at:
                        continue  # done before the interruption: its record is restored
                    resume_here, state = state, None
                elif self.episodic:
                    self._reset_model()
                elif self.optimizer_reset == 'domain':
                    self._reset_optimizer()
                self._run_domain(round_idx, index, domain, loader, bar, running, resume_here)
        bar.close()
        print_log('continual results:\n' + format_records(self.results.records, metric),
                  logger='current')
        if is_main_process():
            self._write()
        for stale in (self._state_path(),  # the run is complete: nothing to resume
                      osp.join(self.runner.work_dir, 'tta_results.partial.json')):
            if osp.isfile(stale) and (stale == self._state_path() or is_main_process()):
                os.remove(stale)
        metrics = self.results.summary_metrics()
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _run_domain(self, round_idx: int, index: int, domain: str, loader: DataLoader,
                    bar: tqdm, running: RunningMetric, state: dict | None = None) -> None:
        self.dataloader = loader
        self.round_idx, self.domain = round_idx, domain
        self.evaluator.dataset_meta = getattr(loader.dataset, 'metainfo', None)
        running.reset()
        method = getattr(self._model(), 'tta_method', None)
        # everything a (round, domain) accumulates, saved with the state for --resume
        progress = dict(stat_sums={},  # whole domain: the record's adapt/* means
                        window={},  # since the last scalar write
                        curve=[], skipped=[], num=0, elapsed=0.0, next_step=0,
                        counts=dict(nonfinite_steps=0, guard_resets=0),
                        # the generators as the domain starts: the loader's order and its
                        # workers' seeds are drawn from them when it is iterated
                        domain_rng=_rng_state())
        if state is not None:
            progress = self._restore(state, loader)
            value = running.update(self.evaluator)
        stat_sums, window, curve = progress['stat_sums'], progress['window'], progress['curve']
        skipped, counts = progress['skipped'], progress['counts']
        interval = -(-len(loader) // self.curve_points)  # at most curve_points points
        start = time.perf_counter() - progress['elapsed']
        for idx, data_batch in self._batches(loader, round_idx, domain, skipped,
                                             progress['next_step'], state):
            self.run_iter(idx, data_batch)
            self.stream_step += 1
            stats = getattr(method, 'last_stats', None) or {}
            if stats.get('nonfinite'):
                counts['nonfinite_steps'] += 1
                self._bad_input(f'non-finite {getattr(method, "last_nonfinite", "values")} '
                                f'(the step was not applied) on {batch_files(data_batch)}',
                                round_idx, domain, idx, skipped, scored=True)
            if self.guard is not None and method is not None:
                reason = self.guard.step(self.last_outputs)
                # every rank resets together, or none: replicas must stay identical
                if not all_ranks(not reason):
                    reason = reason or 'the collapse guard fired on another rank'
                    method.reset()
                    self.guard.clear()
                    counts['guard_resets'] += 1
                    print_log(f'collapse guard: round {round_idx} {domain} step {idx}: {reason}'
                              '; the model is reset to the source', logger='current',
                              level=logging.WARNING)
            for key, value in stats.items():
                if math.isfinite(value):  # e.g. no STAG cosine on a step without valid pixels
                    for sums in (stat_sums.setdefault(key, [0.0, 0]),
                                 window.setdefault(key, [0.0, 0])):
                        sums[0] += float(value)
                        sums[1] += 1
            progress['num'] += len(data_batch['inputs'])
            value = running.update(self.evaluator)
            if (idx + 1) % interval == 0 or idx + 1 == len(loader):
                if value is not None:
                    curve.append([idx + 1, round(value, 4)])
                self._add_scalars(value, window)
                window.clear()
            progress['next_step'] = idx + 1
            progress['elapsed'] = time.perf_counter() - start
            if self.checkpoint_interval and self.stream_step % self.checkpoint_interval == 0:
                self._save_state(round_idx, index, progress)
            bar.update(1)
            bar.set_postfix_str(self._postfix(round_idx, domain, value, progress['num'],
                                              time.perf_counter() - start), refresh=False)
        num = progress['num']
        seconds = time.perf_counter() - start
        # items skipped before the model saw them are not scored (one process only, see
        # _bad_input); a non-finite step's prediction was
        scored = len(loader.dataset) - sum(s['samples'] for s in skipped if not s['scored'])
        if scored <= 0:
            message = (f'round {round_idx}, domain {domain!r}: every item was skipped as bad '
                       'input; nothing to score')
            raise BadInputError(f'{message} (results gathered so far: '
                                f'{self._flush_partial(message)})')
        metrics = self.evaluator.evaluate(scored)
        # the method's and regularizers' statistics (losses, STAG cosine, ...), mean per step
        metrics.update({f'adapt/{k}': total / count for k, (total, count) in stat_sums.items()})
        record = self.results.add(round_idx, domain, scored, metrics, seconds)
        record.update(steps=len(loader), curve=curve,
                      bad_inputs=sum(1 for item in skipped if not item['scored']),
                      skipped_items=skipped, **counts)
        name = self.results.metric
        self.runner.visualizer.add_scalars(
            {f'{name}/{domain}': record[name], f'{name}/domain': record[name],
             'stream/round': round_idx,
             'stream/images_per_s': len(loader.dataset) / seconds},
            step=self.stream_step)
        print_log(f'round {round_idx}/{self.rounds} {domain}: {name} '
                  f'{record[name]:.2f} ({num} images, {num / seconds:.2f} img/s)',
                  logger='current')

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: dict) -> None:
        """TestLoop's step, keeping the outputs for the collapse guard."""
        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        with autocast(enabled=self.fp16):
            outputs = self.runner.model.test_step(data_batch)
        self.last_outputs = outputs
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)

    def _batches(self, loader: DataLoader, round_idx: int, domain: str, skipped: list[dict],
                 first: int = 0, state: dict | None = None) -> Iterator[tuple[int, dict]]:
        """``(step, batch)`` of a domain from step ``first``; unreadable or unscorable batches
        go to the policy. When resuming (``state``), the random number generators are
        restored once the loader stands at ``first``."""
        meta = getattr(loader.dataset, 'metainfo', None) or {}
        num_classes = len(meta['classes']) if meta.get('classes') else None
        ignore_index = getattr((getattr(self.evaluator, 'metrics', None) or [None])[0],
                               'ignore_index', 255)
        if state is not None:
            _set_rng_state(state['progress']['domain_rng'])  # the same order as before
        iterator = iter(loader)
        for _ in range(first):  # done before the interruption (errors were handled then)
            try:
                next(iterator)
            except StopIteration:
                return
            except Exception:  # noqa: BLE001
                pass
        if state is not None:
            _set_rng_state(state['rng'])
        for idx in range(first, len(loader)):
            try:
                data_batch = next(iterator)
            except StopIteration:
                return
            except Exception as err:  # noqa: BLE001  the pipeline could not load an item
                self._bad_input(f'{type(err).__name__}: {err}', round_idx, domain, idx,
                                skipped, samples=min(loader.batch_size or 1,
                                                     len(loader.dataset) - idx * (
                                                         loader.batch_size or 1)))
                continue
            try:
                check_batch(data_batch, num_classes, ignore_index)
            except ValueError as err:
                self._bad_input(str(err), round_idx, domain, idx, skipped,
                                samples=len(data_batch['inputs']))
                continue
            yield idx, data_batch

    # ------------------------------------------------------------------ resume
    def _state_path(self) -> str:
        rank, world = get_rank(), get_world_size()
        name = 'tta_state.pth' if world == 1 else f'tta_state_rank{rank}.pth'
        return osp.join(self.runner.work_dir, name)

    def _stream_identity(self) -> dict:
        """What must not change between a run and its resumption."""
        method = getattr(self._model(), 'tta_method', None)
        return dict(rounds=self.rounds, domains=[n for n, _ in self.domains],
                    world_size=get_world_size(), seed=self.runner.seed,
                    checkpoint=str(self.runner._load_from),
                    method=repr(method) if method is not None else 'Source',
                    batch_size=[loader.batch_size for _, loader in self.domains],
                    on_bad_input=self.on_bad_input, episodic=self.episodic,
                    optimizer_reset=self.optimizer_reset)

    def _save_state(self, round_idx: int, index: int, progress: dict) -> None:
        """Save everything the run needs to continue after this step, atomically."""
        method = getattr(self._model(), 'tta_method', None)
        state = dict(
            version=STATE_VERSION,
            stream=self._stream_identity(),
            position=dict(round=round_idx, domain_index=index,
                          next_step=progress['next_step'], stream_step=self.stream_step),
            model=self._model().state_dict(),
            method=method.state_dict() if method is not None and method.configured else None,
            rng=_rng_state(),
            evaluator=[list(m.results) for m in self.evaluator.metrics],
            records=self.results.records, seconds=self.results.seconds,
            progress=progress,
            guard=self.guard.state_dict() if self.guard is not None else None)
        path = self._state_path()
        tmp = path + '.tmp'
        with open(tmp, 'wb') as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a kill leaves either the old state or the new one, whole

    def _load_state(self) -> dict:
        """The saved state of an interrupted run in this work dir, checked against the stream."""
        path = self._state_path()
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'--resume: no saved state at {path}; the run saves one every '
                f'test_cfg.checkpoint_interval ({self.checkpoint_interval}) steps. Run without '
                '--resume to start from the beginning')
        state = load_checkpoint(path)
        if state.get('version') != STATE_VERSION:
            raise ValueError(f'{path}: state version {state.get("version")}, this toolkit '
                             f'reads {STATE_VERSION}')
        stream = self._stream_identity()
        if state['stream'] != stream:
            raise ValueError(f'{path} was saved by a run of another stream: {state["stream"]}, '
                             f'this run is {stream}')
        if get_world_size() > 1:
            steps = torch.tensor([state['position']['stream_step']] * 2, dtype=torch.float64)
            steps[1] = -steps[1]
            all_reduce(steps, op='max')  # the largest step and minus the smallest
            if steps[0] != -steps[1]:
                raise ValueError(f'--resume: the ranks saved different positions (stream steps '
                                 f'{int(-steps[1])} to {int(steps[0])}); the run was killed '
                                 'while saving, start it again without --resume')
        model = self._model()
        method = getattr(model, 'tta_method', None)
        if method is not None and not method.configured:
            if not hasattr(model, 'configure_adaptation'):
                raise TypeError(f'cannot resume: the adaptation of {type(model).__name__} is '
                                'not configured yet')
            model.configure_adaptation()  # from the source weights, as the first run did
        model.load_state_dict(state['model'])
        if method is not None and state['method'] is not None:
            method.load_state_dict(state['method'])
        if self.guard is not None and state['guard'] is not None:
            self.guard.load_state_dict(state['guard'])
        self.results.records = state['records']
        self.results.seconds = state['seconds']
        self.stream_step = state['position']['stream_step']
        pos = state['position']
        print_log(f'resumed from {path}: round {pos["round"]}, domain '
                  f'{self.domains[pos["domain_index"]][0]!r}, step {pos["next_step"]} '
                  f'(stream step {pos["stream_step"]})', logger='current')
        return state

    def _restore(self, state: dict, loader: DataLoader) -> dict:
        """Put the evaluator's accumulators back; return the (round, domain)'s progress."""
        param = next(self._model().parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        for metric, results in zip(self.evaluator.metrics, state['evaluator']):
            metric.results = _to_device(list(results), device)  # where new results are made
        return state['progress']

    def _bad_input(self, what: str, round_idx: int, domain: str, idx: int,
                   skipped: list[dict], scored: bool = False, samples: int = 0) -> None:
        """Apply ``on_bad_input``: write what was gathered and stop, or log and count it.

        ``scored``: the item's prediction was made and scored (a non-finite step), as opposed
        to an item skipped before the model saw it (``samples`` of them).
        """
        message = f'round {round_idx}, domain {domain!r}, step {idx}: {what}'
        if self.on_bad_input == 'skip' and not scored and get_world_size() > 1:
            # the other ranks would run this step's collectives without this one
            message += (' (skipping an item before the model sees it needs one process; '
                        'with several, the run stops)')
        elif self.on_bad_input == 'skip':
            print_log(f'skipped: {message}', logger='current', level=logging.WARNING)
            skipped.append(dict(step=idx, error=what, scored=scored, samples=samples))
            return
        path = self._flush_partial(message)
        raise BadInputError(f'{message}\n(results gathered so far: {path}; '
                            "test_cfg.on_bad_input='skip' skips and counts such items)")

    def _flush_partial(self, failure: str) -> str | None:
        """Write the records gathered so far (and why the run stopped) to disk."""
        if self.results is None:
            return None
        doc = self._document()
        doc.update(failure=failure, complete=False)
        name = ('tta_results.partial.json' if get_world_size() == 1
                else f'tta_results.partial.rank{get_rank()}.json')  # the failing rank writes
        path = osp.join(self.runner.work_dir, name)
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(doc, f, indent=2)
        os.replace(tmp, path)
        return path

    def _add_scalars(self, value: float | None, window: dict[str, list[float]]) -> None:
        """The running metric and the method's statistics since the last write."""
        scalars = {f'adapt/{k}': total / count for k, (total, count) in window.items()}
        if value is not None:
            scalars[f'running/{self.results.metric}'] = value
        if scalars:
            self.runner.visualizer.add_scalars(scalars, step=self.stream_step)

    def _postfix(self, round_idx: int, domain: str, value: float | None, num: int,
                 seconds: float) -> str:
        shown = f' {self.results.metric}={value:.1f}' if value is not None else ''
        return f'r{round_idx} {domain}{shown} {num / max(seconds, 1e-9):.2f} img/s'

    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _reset_model(self) -> None:
        method = getattr(self._model(), 'tta_method', None)
        if method is None:
            raise TypeError(f'test_cfg.episodic=True needs a model that adapts (TTAEncoderDecoder '
                            f'or a TTAHook), got {type(self._model()).__name__}')
        method.reset()
        if self.guard is not None:
            self.guard.clear()

    def _reset_optimizer(self) -> None:
        method = getattr(self._model(), 'tta_method', None)
        if method is not None and method.configured:  # else it is built fresh anyway
            method.reset_optimizer()

    def _config_dump(self) -> str | None:
        """The merged config (every --cfg-options applied) that the runner dumped."""
        cfg = self.runner.cfg
        name = osp.basename(cfg.filename) if cfg.filename else f'{self.runner.timestamp}.py'
        path = osp.join(self.runner.work_dir, name)
        return path if osp.isfile(path) else None

    def _environment(self) -> dict:
        """Where and how the run was made (device, processes, seed, determinism, command)."""
        param = next(self._model().parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        randomness = self.runner._randomness_cfg
        return dict(
            device=str(device),
            device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                         else platform.processor() or platform.machine()),
            world_size=get_world_size(),
            launcher=self.runner.launcher,
            seed=self.runner.seed,
            deterministic=bool(randomness.get('deterministic', False)),
            torch_threads=torch.get_num_threads(),
            command=' '.join(sys.argv),
            experiment=self.runner.experiment_name)

    def _document(self) -> dict:
        """The results document of the records so far."""
        method = getattr(self._model(), 'tta_method', None)
        cfg = self.runner.cfg
        return self.results.to_dict(
            method=method.name if method is not None else 'Source',
            regularizers=[getattr(r, 'name', type(r).__name__)
                          for r in getattr(method, 'regularizers', [])],
            config=cfg.filename if cfg.filename else None,
            config_dump=self._config_dump(),
            checkpoint=self.runner._load_from,
            seed=self.runner.seed,
            episodic=self.episodic,
            optimizer_reset=self.optimizer_reset,
            environment=self._environment(),
            guard_resets=sum(r.get('guard_resets', 0) for r in self.results.records),
            nonfinite_steps=sum(r.get('nonfinite_steps', 0) for r in self.results.records),
            bad_inputs=sum(r.get('bad_inputs', 0) for r in self.results.records))

    def _write(self) -> None:
        doc = self._document()
        paths = write_results(doc, self.runner.work_dir)
        env_path = osp.join(self.runner.work_dir, 'environment.json')
        with open(env_path, 'w') as f:
            json.dump(dict(doc['environment'], versions=doc['versions'],
                           collect_env={k: str(v) for k, v in collect_env().items()}), f,
                      indent=2)
        paths.append(env_path)
        print_log('results written to ' + ', '.join(osp.basename(p) for p in paths) + ' in '
                  + self.runner.work_dir, logger='current')


def _set_key(cfg: dict, path: str, value) -> None:
    """``cfg[a][b]... = value`` for the dotted ``path`` ``'a.b...'`` (list items by index)."""
    *parents, last = path.split('.')
    node = cfg
    for i, key in enumerate(parents + [last]):
        where = '.'.join((parents + [last])[:i + 1])
        if isinstance(node, (list, tuple)):
            if not key.isdigit() or int(key) >= len(node):
                raise KeyError(f'test_cfg.domain_key {path!r}: no item {key!r} at {where!r} '
                               f'(a list of {len(node)})')
            key = int(key)
        elif not isinstance(node, dict):
            raise KeyError(f'test_cfg.domain_key {path!r}: {where!r} is not inside a dict')
        if i == len(parents):
            node[key] = value
        else:
            if isinstance(node, dict) and key not in node:
                raise KeyError(f'test_cfg.domain_key {path!r}: the dataset config has no '
                               f'{where!r}')
            node = node[key]


#: Layout version of the ``--resume`` state files.
STATE_VERSION = 1


def _rng_state() -> dict:
    """Every random number generator the stream draws from (plain values and tensors)."""
    np_state = np.random.get_state()
    return dict(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        numpy=dict(kind=np_state[0], keys=torch.from_numpy(np_state[1].astype(np.int64)),
                   pos=int(np_state[2]), has_gauss=int(np_state[3]),
                   cached=float(np_state[4])),
        python=random.getstate())


def _set_rng_state(state: dict) -> None:
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
