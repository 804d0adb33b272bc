"""``ContinualTestLoop``: a test loop over a stream of domains, round after round."""
from __future__ import annotations

import logging
import sys
import time
from contextlib import nullcontext
from typing import Iterator, Sequence

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import LOOPS
from mmengine.runner import TestLoop
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import compat
from ..datasets.domains import domain_dataloader
from ..dist import all_ranks
from ..evaluation import (DomainProgress, StreamResults, format_records, results_document,
                          write_partial, write_run)
from .guards import (BadInputError, BadInputPolicy, CollapseGuardHook, batch_files,
                     check_batch)
from .preemption import Preempted, PreemptionSignals, shield_workers, stop_signals_blocked
from .resume import StreamState, rng_state, set_rng_state
from .stats_hook import TTAStatsHook

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
        domains (Sequence[str | dict]): The domain order of one round: names, or dicts that
            change the dataset or give a whole dataloader
            (:func:`~stag_seg.datasets.domains.domain_dataloader`).
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
            metric in the results (``curve``) and writes of the step statistics to the
            visualizer. Defaults to 20. With several processes the curve is the main
            process's share of each domain.
        on_bad_input (str): ``'error'`` (default): an unreadable image, an unscorable label or
            a NaN/Inf in the logits, loss or gradients stops the run with an error naming the
            file, the domain and the step, after writing ``tta_results.partial.json``.
            ``'skip'``: such an item is skipped (never scored nor adapted on), a non-finite
            step keeps its prediction without an update; each is logged and counted
            (``bad_inputs``, ``skipped_items``, ``nonfinite_steps``). A non-finite value never
            reaches the weights.
        collapse_guard (dict, optional): Arguments of a
            :class:`~stag_seg.engine.guards.CollapseGuardHook`, which the loop registers:
            reset the model to the source when it fires, counted in the record
            (``guard_resets``). Off by default.
        checkpoint_interval (int): Every this many steps the whole state is saved atomically
            to ``<work_dir>/tta_state/`` (:mod:`~stag_seg.engine.resume`; each rank keeps its
            last two). While it is not 0, SIGTERM or SIGINT saves the state after the current
            step and stops the run with :class:`~stag_seg.engine.preemption.Preempted`
            (``tools/test_tta.py`` exits with status 75). 0 never saves, and leaves the signals
            alone. Defaults to 500.
        resume (bool): Continue from the newest state that is whole on every rank
            (``tools/test_tta.py --resume``); the results equal an uninterrupted run's.
            Defaults to False.

    The step statistics and the running metric reach the visualizer through a
    :class:`~stag_seg.engine.TTAStatsHook` that the loop registers unless the config has one.
    The loop keeps ``TestLoop``'s hook order and evaluator protocol and inherits its
    ``run_iter``.
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
        for key, value, low in (('rounds', rounds, 1), ('curve_points', curve_points, 1),
                                ('checkpoint_interval', checkpoint_interval, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f'test_cfg.{key} must be an int >= {low}, got {value!r}')
        if optimizer_reset not in OPTIMIZER_RESETS:
            raise ValueError(f'test_cfg.optimizer_reset must be one of {OPTIMIZER_RESETS}, got '
                             f'{optimizer_reset!r}')
        self.bad_inputs = BadInputPolicy(on_bad_input)
        # a bad guard setting fails here too, before any data is built
        guard = CollapseGuardHook(**collapse_guard) if collapse_guard else None
        specs = [domain_dataloader(d, dataloader, domain_key) for d in domains]
        names = [n for n, _ in specs]
        if len(set(names)) != len(names):
            raise ValueError(f'test_cfg.domains has repeated names: {names}')
        super().__init__(runner, specs[0][1], evaluator, fp16)
        compat.prepare_checkpoint_loading()  # the runner loads the source checkpoint next
        diff_rank_seed = runner.cfg.get('randomness', {}).get('diff_rank_seed', False)
        self.domains = [(names[0], self.dataloader)] + [
            (name, runner.build_dataloader(cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed))
            for name, cfg in specs[1:]]
        for name, loader in self.domains:
            if len(loader.dataset) == 0:
                raise ValueError(f'domain {name!r} has no samples; check its dataset config')
            if checkpoint_interval:  # preemptible: the workers outlive SIGTERM and SIGINT
                shield_workers(loader)
        self.rounds, self.episodic, self.optimizer_reset = rounds, episodic, optimizer_reset
        self.metric_key, self.metric = metric_key, metric_key.split('/')[0]
        self.progress, self.on_bad_input = progress, on_bad_input
        self.checkpoint_interval, self.resume = checkpoint_interval, resume
        self.stats = self._hook(TTAStatsHook(curve_points=curve_points, metric=self.metric))
        self.guard = self._hook(guard) if guard is not None else None
        self.state = StreamState(self)
        self.signals: PreemptionSignals | None = None
        self.results: StreamResults | None = None
        # where the stream is: hooks (the --show-dir one) read these
        self.round_idx, self.domain, self.stream_step = 0, '', 0

    def _hook(self, hook):
        """The runner's hook of ``hook``'s type when the config has one, else ``hook``,
        registered now."""
        for registered in self.runner.hooks:
            if isinstance(registered, type(hook)):
                return registered
        self.runner.register_hook(hook)
        return hook

    @property
    def model(self):
        """The tested model, unwrapped from its DDP wrapper."""
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    @property
    def method(self):
        """The model's TTA method, or None for a model that does not adapt."""
        return getattr(self.model, 'tta_method', None)

    def run(self) -> dict:
        """Run the whole stream; returns ``{'r1/fog/mIoU': ..., 'mean/mIoU': ...}``."""
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        self.results = StreamResults(self.metric, self.rounds, [n for n, _ in self.domains],
                                     self.metric_key)
        total = self.rounds * sum(len(loader) for _, loader in self.domains)
        bar = tqdm(total=total, unit='batch', disable=not (self.progress and is_main_process()),
                   mininterval=0.5 if sys.stderr.isatty() else 15, dynamic_ncols=True)
        state = self.state.load() if self.resume else None
        self.stream_step = self.stats.step = state['position']['stream_step'] if state else 0
        bar.update(self.stream_step)
        # a resumable run saves its state and stops at the next step on SIGTERM or SIGINT
        with PreemptionSignals() if self.checkpoint_interval else nullcontext() as signals:
            self.signals = signals
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
                    elif self.optimizer_reset == 'domain' and self.method is not None \
                            and self.method.configured:  # else it is built fresh anyway
                        self.method.reset_optimizer()
                    if resume_here is None and self.method is not None:
                        self.method.begin_domain(round_idx, index)  # a resumed visit: its state
                    self._run_domain(round_idx, index, domain, loader, bar, resume_here)
        bar.close()
        print_log('continual results:\n' + format_records(self.results.records, self.metric),
                  logger='current')
        self._write_results()
        self.state.remove()
        metrics = self.results.summary_metrics()
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _run_domain(self, round_idx: int, index: int, domain: str, loader: DataLoader,
                    bar: tqdm, state: dict | None = None) -> None:
        self.dataloader = loader
        self.round_idx, self.domain = round_idx, domain
        self.evaluator.dataset_meta = getattr(loader.dataset, 'metainfo', None)
        progress = DomainProgress(len(loader), self.stats.curve_points, self.metric)
        # the generators as the domain starts: the loader's order and its workers' seeds are
        # drawn from them when it is iterated
        progress.domain_rng = rng_state()
        self.stats.begin(progress)
        if state is not None:
            progress.load_state_dict(state['progress'])
            self.state.restore_evaluator(state)
            self.stats.running.update(self.evaluator)
        start = time.perf_counter() - progress.elapsed
        for idx, data_batch in self._batches(loader, round_idx, domain, progress, state):
            self.run_iter(idx, data_batch)  # TTAStatsHook takes the step's statistics
            self.stream_step += 1
            if progress.nonfinite:
                self._bad_input(f'non-finite {progress.nonfinite} (the step was not applied) on '
                                f'{batch_files(data_batch)}', round_idx, domain, idx,
                                progress, scored=True)
            progress.next_step = idx + 1
            progress.elapsed = time.perf_counter() - start
            if self.checkpoint_interval and self.stream_step % self.checkpoint_interval == 0:
                self._save(round_idx, index, progress)
            if self.signals is not None and (signal := self.signals.requested()):
                self._preempt(signal, round_idx, index, progress)
            bar.update(1)
            bar.set_postfix_str(self._postfix(progress, time.perf_counter() - start),
                                refresh=False)
        seconds = time.perf_counter() - start
        # items skipped before the model saw them are not scored (one process only, see
        # _bad_input); a non-finite step's prediction was
        scored = len(loader.dataset) - sum(s['samples'] for s in progress.skipped
                                           if not s['scored'])
        if scored <= 0:
            message = (f'round {round_idx}, domain {domain!r}: every item was skipped as bad '
                       'input; nothing to score')
            raise BadInputError(f'{message} (results gathered so far: {self._partial(message)})')
        metrics = self.evaluator.evaluate(scored)
        metrics.update(progress.means())  # the method's and regularizers' statistics per step
        record = self.results.add(round_idx, domain, scored, metrics, seconds)
        record.update(progress.record_fields())
        self.runner.visualizer.add_scalars(
            {f'{self.metric}/{domain}': record[self.metric],
             f'{self.metric}/domain': record[self.metric], 'stream/round': round_idx,
             'stream/images_per_s': len(loader.dataset) / seconds}, step=self.stream_step)
        print_log(f'round {round_idx}/{self.rounds} {domain}: {self.metric} '
                  f'{record[self.metric]:.2f} ({progress.num} images, '
                  f'{progress.num / seconds:.2f} img/s)', logger='current')

    def _batches(self, loader: DataLoader, round_idx: int, domain: str,
                 progress: DomainProgress, state: dict | None) -> Iterator[tuple[int, dict]]:
        """``(step, batch)`` of a domain from ``progress.next_step``; unreadable or unscorable
        batches go to the policy. When resuming (``state``), the random number generators are
        restored once the loader stands where the interrupted run stopped."""
        meta = getattr(loader.dataset, 'metainfo', None) or {}
        num_classes = len(meta['classes']) if meta.get('classes') else None
        ignore_index = getattr((getattr(self.evaluator, 'metrics', None) or [None])[0],
                               'ignore_index', 255)
        if state is not None:
            set_rng_state(progress.domain_rng)  # the same order as before
        # workers that start while a stop signal arrives would die of it (stop_signals_blocked)
        with stop_signals_blocked() if self.signals is not None else nullcontext():
            iterator = iter(loader)
        first = progress.next_step
        for _ in range(first):  # done before the interruption (errors were handled then)
            try:
                next(iterator)
            except StopIteration:
                return
            except Exception:  # noqa: BLE001
                pass
        if state is not None:
            set_rng_state(state['rng'])
        for idx in range(first, len(loader)):
            try:
                data_batch = next(iterator)
            except StopIteration:
                return
            except Exception as err:  # noqa: BLE001  the pipeline could not load an item
                batch = loader.batch_size or 1
                self._bad_input(f'{type(err).__name__}: {err}', round_idx, domain, idx,
                                progress, samples=min(batch, len(loader.dataset) - idx * batch))
                continue
            try:
                check_batch(data_batch, num_classes, ignore_index)
            except ValueError as err:
                self._bad_input(str(err), round_idx, domain, idx, progress,
                                samples=len(data_batch['inputs']))
                continue
            yield idx, data_batch

    def _bad_input(self, what: str, round_idx: int, domain: str, idx: int,
                   progress: DomainProgress, scored: bool = False, samples: int = 0) -> None:
        """Apply ``on_bad_input`` (:class:`~stag_seg.engine.guards.BadInputPolicy`)."""
        self.bad_inputs.apply(f'round {round_idx}, domain {domain!r}, step {idx}: {what}',
                              progress.skipped, self._partial, dict(step=idx, error=what,
                                                                     scored=scored,
                                                                     samples=samples))

    def _save(self, round_idx: int, index: int, progress: DomainProgress) -> str:
        """Save the resume state; a write that fails (a full disk) stops the run with the
        error, the partial results written first."""
        try:
            return self.state.save(round_idx, index, progress)
        except OSError as err:
            raise OSError(err.errno, f'{err.strerror} (results gathered so far: '
                          f'{self._partial(str(err.strerror))})') from err

    def _preempt(self, signal: str, round_idx: int, index: int,
                 progress: DomainProgress) -> None:
        """Save the state after this step and stop: raise :class:`Preempted`."""
        path = self._save(round_idx, index, progress)
        # no rank exits before every rank's state is on disk: launchers stop the others as
        # soon as one process exits (torchrun with SIGTERM, srun --kill-on-bad-exit)
        all_ranks(True)
        message = (f'stopped by {signal} after stream step {self.stream_step} (round '
                   f'{round_idx}, domain {self.domain!r}, step {progress.next_step}); the state '
                   f'is saved in {path}: run again with --resume to continue')
        partial = self._partial(message) if is_main_process() else None
        print_log(message + (f' (results gathered so far: {partial})' if partial else ''),
                  logger='current', level=logging.WARNING)
        raise Preempted(message)

    def _write_results(self) -> None:
        """Rank 0 writes the results files; the resume state is kept until every rank knows
        that they were written."""
        error = None
        if is_main_process():
            try:
                write_run(self._document(), self.runner.work_dir)
            except OSError as err:
                error = err
        if all_ranks(error is None):
            return
        keep = (f'The resume state in {self.state.folder} is kept: make room and run again '
                'with --resume to write them')
        if error is None:
            raise RuntimeError(f'the main process could not write the results. {keep}')
        message = f'could not write the results to {self.runner.work_dir}: {error}'
        raise OSError(error.errno, f'{message}. {keep} (results gathered so far: '
                      f'{self._partial(message)})') from error

    def _partial(self, failure: str) -> str | None:
        if self.results is None:
            return None
        return write_partial(self._document(), self.runner.work_dir, failure)

    def _document(self) -> dict:
        return results_document(self.runner, self.model, self.results, episodic=self.episodic,
                                optimizer_reset=self.optimizer_reset)

    def _postfix(self, progress: DomainProgress, seconds: float) -> str:
        value = progress.value
        shown = f' {self.metric}={value:.1f}' if value is not None else ''
        return (f'r{self.round_idx} {self.domain}{shown} '
                f'{progress.num / max(seconds, 1e-9):.2f} img/s')

    def _reset_model(self) -> None:
        if self.method is None:
            raise TypeError(f'test_cfg.episodic=True needs a model that adapts (TTAEncoderDecoder '
                            f'or a TTAHook), got {type(self.model).__name__}')
        self.method.reset()
        if self.guard is not None:
            self.guard.guard.clear()
