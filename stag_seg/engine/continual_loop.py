"""``ContinualTestLoop``: a test loop over a stream of domains, round after round."""
from __future__ import annotations

import copy
import math
import os.path as osp
import sys
import time
from typing import Sequence

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import LOOPS
from mmengine.runner import TestLoop
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..evaluation.records import RunningMetric, StreamResults
from ..evaluation.report import format_records, write_results

__all__ = ['ContinualTestLoop']


@LOOPS.register_module()
class ContinualTestLoop(TestLoop):
    """Evaluate online adaptation on a stream of domains (fog, night, ...) for several rounds.

    Every (round, domain) is scored by the configured evaluator (MMSeg's ``IoUMetric``, say)
    on the predictions the model made *before* it updated on each batch. The model is never
    reset in continual mode; ``episodic=True`` resets it to the source before every domain.
    Results go to ``<work_dir>/tta_results.{json,csv,md,png}`` (rank 0).

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
        domain_key (str): The dataset argument a domain name sets. Defaults to
            ``'condition'`` (``ACDCDataset``).
        metric_key (str): The evaluator's key of the headline metric; ``'mIoU'`` or
            ``'accuracy/top1'``. Defaults to ``'mIoU'``.
        progress (bool): Show a progress bar (images/s, running metric). Defaults to True.
        fp16 (bool): Autocast the forward. Defaults to False.
    """

    def __init__(self,
                 runner,
                 dataloader: dict,
                 evaluator,
                 domains: Sequence[str | dict],
                 rounds: int = 1,
                 episodic: bool = False,
                 domain_key: str = 'condition',
                 metric_key: str = 'mIoU',
                 progress: bool = True,
                 fp16: bool = False) -> None:
        if not domains:
            raise ValueError('ContinualTestLoop needs at least one domain in test_cfg.domains')
        if not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f'test_cfg.rounds must be an int >= 1, got {rounds!r}')
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
        self.metric_key = metric_key
        self.progress = progress
        self.results: StreamResults | None = None

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
            cfg['dataset'][domain_key] = domain
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
        for round_idx in range(1, self.rounds + 1):
            for domain, loader in self.domains:
                if self.episodic:
                    self._reset_model()
                self._run_domain(round_idx, domain, loader, bar, running)
        bar.close()
        print_log('continual results:\n' + format_records(self.results.records, metric),
                  logger='current')
        if is_main_process():
            self._write()
        metrics = self.results.summary_metrics()
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _run_domain(self, round_idx: int, domain: str, loader: DataLoader, bar: tqdm,
                    running: RunningMetric) -> None:
        self.dataloader = loader
        self.evaluator.dataset_meta = getattr(loader.dataset, 'metainfo', None)
        running.reset()
        method = getattr(self._model(), 'tta_method', None)
        stat_sums: dict[str, list[float]] = {}
        num, start = 0, time.perf_counter()
        for idx, data_batch in enumerate(loader):
            self.run_iter(idx, data_batch)
            for key, value in (getattr(method, 'last_stats', None) or {}).items():
                if math.isfinite(value):  # e.g. no STAG cosine on a step without valid pixels
                    sums = stat_sums.setdefault(key, [0.0, 0])
                    sums[0] += float(value)
                    sums[1] += 1
            num += len(data_batch['inputs'])
            bar.update(1)
            bar.set_postfix_str(self._postfix(round_idx, domain, running, num,
                                              time.perf_counter() - start), refresh=False)
        seconds = time.perf_counter() - start
        metrics = self.evaluator.evaluate(len(loader.dataset))
        # the method's and regularizers' statistics (losses, STAG cosine, ...), mean per step
        metrics.update({f'adapt/{k}': total / count for k, (total, count) in stat_sums.items()})
        record = self.results.add(round_idx, domain, len(loader.dataset), metrics, seconds)
        print_log(f'round {round_idx}/{self.rounds} {domain}: {self.results.metric} '
                  f'{record[self.results.metric]:.2f} ({num} images, {num / seconds:.2f} img/s)',
                  logger='current')

    def _postfix(self, round_idx: int, domain: str, running: RunningMetric, num: int,
                 seconds: float) -> str:
        value = running.update(self.evaluator)
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

    def _config_dump(self) -> str | None:
        """The merged config (every --cfg-options applied) that the runner dumped."""
        cfg = self.runner.cfg
        name = osp.basename(cfg.filename) if cfg.filename else f'{self.runner.timestamp}.py'
        path = osp.join(self.runner.work_dir, name)
        return path if osp.isfile(path) else None

    def _write(self) -> None:
        method = getattr(self._model(), 'tta_method', None)
        cfg = self.runner.cfg
        doc = self.results.to_dict(
            method=method.name if method is not None else 'Source',
            regularizers=[getattr(r, 'name', type(r).__name__)
                          for r in getattr(method, 'regularizers', [])],
            config=cfg.filename if cfg.filename else None,
            config_dump=self._config_dump(),
            checkpoint=self.runner._load_from,
            seed=self.runner.seed,
            episodic=self.episodic)
        paths = write_results(doc, self.runner.work_dir)
        print_log('results written to ' + ', '.join(osp.basename(p) for p in paths) + ' in '
                  + self.runner.work_dir, logger='current')
