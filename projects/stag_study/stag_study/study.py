"""The pre-registered study of STAG's readings (projects/stag_study/README.md, "The study").

A study config (``projects/stag_study/configs/stag-study.py``) holds the split, the benchmark
candidates, the grid of readings and the rule's constants. It runs in three phases, each on
the runs the previous one chose:

1. ``benchmark``: the base hyperparameters (batch size, learning rate), scored on dev by the
   published phenomena (:func:`benchmark_checks`);
2. ``readings``: every reading x weight of the grid beside its base method on every dev cell
   (method x family x setting) and seed, scored by the selection rule (:func:`reading_rule`);
3. ``held_out``: the chosen default and its base methods on the held-out split, once.

Every run is a Digits-C config with its family's and its setting's overlays (from the
benchmark suite), the candidate's options and the split's corruptions, run through MMEngine's
runner (:func:`stag_seg.engine.configuration`); a run whose results exist is read, not rerun.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mmengine.config import Config

from stag_seg.engine.configuration import build_config
from stag_seg.suites import OPTIONAL_PARTS, run_config

__all__ = ['PHASES', 'PHASES2', 'StudyRun', 'benchmark_checks', 'paired_change', 'plan_phase',
           'plan_phase2', 'plan_segmentation2', 'reading_rule', 'rule2', 'rule2_table',
           'rule_table', 'run_phase', 'run_segmentation', 'segmentation_summary',
           'segmentation_table', 'split_domains', 'study_table']

PHASES = ('benchmark', 'readings', 'held_out')
#: The second study's phases (this project's README, "The second study").
PHASES2 = ('readings2', 'held_out2')


@dataclass(frozen=True)
class StudyRun:
    """One run of the study: ``key`` names it (and its folder), the rest builds its config."""
    key: str
    config: str
    overlays: tuple[str, ...]
    options: dict = field(hash=False)
    seed: int | None = 0  # None: the config's own randomness.seed


def split_domains(setting: str, corruptions: Sequence[str]) -> list:
    """``test_cfg.domains`` of a split: its corruptions in order, or one mixed domain of them."""
    if setting == 'mixed':
        return [dict(name='mixed', dataset=dict(vary=dict(corruption=list(corruptions))))]
    return list(corruptions)


def _run(study: Config, suite: Config, key: str, method: str, family: str, setting: str,
         seed: int, split: str, candidate: str, stag: dict | None = None,
         regime: dict | None = None) -> StudyRun:
    hyper = study.candidates[candidate]
    options = dict(study.get('cfg_options') or {})
    options['test_cfg.domains'] = split_domains(setting, study.splits[split]['corruptions'])
    options['model.adapt_optim_wrapper.optimizer.lr'] = hyper['lr']
    if setting != 'batch1':
        options['test_dataloader.batch_size'] = hyper['batch_size']
    if regime is not None:  # a phase-2 cell's own optimizer, batch size and rounds
        options.pop('model.adapt_optim_wrapper.optimizer.lr')
        options['model.adapt_optim_wrapper.optimizer'] = dict(_delete_=True,
                                                               **regime['optimizer'])
        options['lr_scaling'] = None  # the rate is the one stated, at the cell's batch size
        options['test_dataloader.batch_size'] = regime['batch_size']
        options['test_cfg.rounds'] = regime['rounds']
    if stag is not None:
        options['model.tta_method.regularizers'] = [dict(type='STAG', **stag)]
    overlays = tuple(suite.families[family]['overlays']) + tuple(suite.settings[setting])
    return StudyRun(key, study.config_path.format(method), overlays, options, seed)


def _stag_label(reading: str, weight: float) -> str:
    return f'{reading}-{weight:g}'


def plan_phase(study: Config, suite: Config, phase: str, candidate: str | None = None,
               default: tuple[str, float] | None = None) -> list[StudyRun]:
    """The runs of ``phase``; ``candidate`` (readings, held-out) and ``default`` (held-out) are
    what the phases before chose."""
    if phase not in PHASES:
        raise ValueError(f'phase must be one of {PHASES}, got {phase!r}')
    runs = []
    if phase == 'benchmark':
        seeds = study.splits.dev.seeds
        for name in study.candidates:
            for family, settings in study.benchmark_runs.items():
                for setting, methods in settings.items():
                    for method in methods:
                        for seed in seeds:
                            runs.append(_run(study, suite,
                                             f'{name}/{family}/{setting}/{method}/seed{seed}',
                                             method, family, setting, seed, 'dev', name))
        return runs
    if candidate is None:
        raise ValueError(f'phase {phase!r} needs the benchmark candidate the first phase chose')
    split = 'dev' if phase == 'readings' else 'held_out'
    if phase == 'readings':
        stags = {_stag_label(r, w): dict(study.readings[r], weight=w)
                 for r in study.readings for w in study.weights}
    else:
        if default is None:
            raise ValueError('phase held_out needs the default the readings phase chose')
        reading, weight = default
        stags = {_stag_label(reading, weight): dict(study.readings[reading], weight=weight)}
    for family in study.splits[split].families:
        for setting in study.settings:
            for method in study.base_methods:
                for seed in study.splits[split].seeds:
                    base = f'{family}/{setting}/{method}'
                    runs.append(_run(study, suite, f'{base}/base/seed{seed}', method, family,
                                     setting, seed, split, candidate))
                    for label, stag in stags.items():
                        runs.append(_run(study, suite, f'{base}/{label}/seed{seed}', method,
                                         family, setting, seed, split, candidate, stag))
    return runs


def _phase2_cells(study: Config, split: str) -> list[tuple[str, str, str, dict | None]]:
    """``(family, setting, method, regime)`` of every cell of the second study on ``split``:
    the first study's cells (the benchmark's hyperparameters; ``regime`` None), then each
    regime's, whose setting is named ``<setting>+<regime>``."""
    cells = [(family, setting, method, None)
             for family in study.splits[split].families
             for setting in study.settings for method in study.base_methods]
    for name, regime in study.phase2.regimes.items():
        for family in study.splits[split].families:
            for method in regime['methods']:
                cells.append((family, f'{regime["setting"]}+{name}', method, regime))
    return cells


def plan_phase2(study: Config, suite: Config, phase: str, candidate: str,
                chosen: str | None = None) -> list[StudyRun]:
    """The runs of the second study's ``phase`` (:data:`PHASES2`): on dev (``readings2``) every
    candidate of ``study.phase2.candidates`` beside its base in every cell and seed; on
    held-out (``held_out2``) the ``chosen`` one. ``candidate`` is the benchmark's
    hyperparameters the first study chose (the cells without a regime)."""
    if phase not in PHASES2:
        raise ValueError(f'phase must be one of {PHASES2}, got {phase!r}')
    split = 'dev' if phase == 'readings2' else 'held_out'
    stags = dict(study.phase2.candidates)
    if phase == 'held_out2':
        if chosen not in stags:
            raise ValueError(f'phase held_out2 needs the candidate readings2 chose, one of '
                             f'{list(stags)}; got {chosen!r}')
        stags = {chosen: stags[chosen]}
    runs = []
    for family, setting, method, regime in _phase2_cells(study, split):
        plain = setting.split('+')[0]
        for seed in study.splits[split].seeds:
            base = f'{family}/{setting}/{method}'
            runs.append(_run(study, suite, f'{base}/base/seed{seed}', method, family, plain,
                             seed, split, candidate, regime=regime))
            for label, stag in stags.items():
                runs.append(_run(study, suite, f'{base}/{label}/seed{seed}', method, family,
                                 plain, seed, split, candidate, dict(stag), regime))
    return runs


def plan_segmentation2(study: Config, chosen: str) -> list[StudyRun]:
    """The second study's segmentation runs on held-out: on each stream of
    ``study.phase2.segmentation`` (a suite config, whose ``cfg_options`` make the stream), each
    method without (``base``) and with the ``chosen`` candidate, one run each with the
    config's own seed. Keys: ``seg/<stream>/<method>/<base|chosen>``."""
    seg = study.phase2.segmentation
    stags = dict(study.phase2.candidates)
    if chosen not in stags:
        raise ValueError(f'the segmentation runs need the candidate readings2 chose, one of '
                         f'{list(stags)}; got {chosen!r}')
    runs = []
    for stream, suite_path in seg.streams.items():
        stream_options = dict(Config.fromfile(suite_path).get('cfg_options') or {})
        for method in seg.methods:
            for label, stag in (('base', None), (chosen, stags[chosen])):
                options = dict(stream_options)
                if stag is not None:
                    options['model.tta_method.regularizers'] = [dict(type='STAG', **stag)]
                runs.append(StudyRun(f'seg/{stream}/{method}/{label}',
                                     seg.config_path.format(method), (), options, None))
    return runs


def run_segmentation(runs: Sequence[StudyRun], out: str,
                     runner: Callable[[Config], dict] = run_config,
                     log: Callable[[str], None] = print) -> dict[str, dict]:
    """Run (or read back) every segmentation run; its results document by key (as
    :func:`run_phase` does, with the document kept: the mIoU per (round, domain))."""
    docs = {}
    for i, run in enumerate(runs):
        docs[run.key] = _run_or_read(run, out, runner)
        log(f'[{i + 1}/{len(runs)}] {run.key}: mIoU {docs[run.key]["mean"]:.2f}')
    return docs


def segmentation_summary(docs: dict[str, dict], chosen: str) -> dict:
    """Per stream and method: the base's and the candidate's mIoU per round and overall, the
    change (one run each), images/s and the torch threads each ran with (CPU floats differ in
    the last digits with the thread count, which the candidate's runs can amplify)."""
    result: dict = {}
    for key, doc in docs.items():
        _, stream, method, label = key.split('/')
        rounds: dict[int, list[float]] = {}
        for rec in doc['records']:
            rounds.setdefault(int(rec['round']), []).append(float(rec[doc['metric']]))
        entry = dict(mean=float(doc['mean']),
                     per_round=[statistics.fmean(v) for _, v in sorted(rounds.items())],
                     images_per_s=float(doc['images_per_s']),
                     threads=doc.get('environment', {}).get('torch_threads'))
        cell = result.setdefault(stream, {}).setdefault(method, {})
        cell['base' if label == 'base' else 'candidate'] = entry
    for methods in result.values():
        for cell in methods.values():
            if 'base' in cell and 'candidate' in cell:
                cell['change'] = cell['candidate']['mean'] - cell['base']['mean']
    return dict(candidate=chosen, streams=result)


def segmentation_table(summary: dict) -> str:
    """The segmentation part of held_out2 as markdown: mIoU (%) per round, the change."""
    first = next(iter(next(iter(summary['streams'].values())).values()))
    rounds = ' | '.join(f'r{r + 1}' for r in range(len(first['base']['per_round'])))
    head = (f'| stream | method | {rounds} | mean | + candidate: {rounds} | mean | change |\n'
            '|---|---|' + '---:|' * (2 * len(first['base']['per_round']) + 3))
    lines = [head]
    for stream, methods in summary['streams'].items():
        for method, cell in methods.items():
            base, new = cell['base'], cell['candidate']
            lines.append(
                f'| {stream} | {method} | ' + ' | '.join(f'{v:.2f}' for v in base['per_round'])
                + f' | {base["mean"]:.2f} | '
                + ' | '.join(f'{v:.2f}' for v in new['per_round'])
                + f' | {new["mean"]:.2f} | {cell["change"]:+.2f} |')
    return '\n'.join(lines)


def rule2(study: Config, errors: dict[str, float], split: str = 'dev') -> dict:
    """The second study's rule (this project's README, "The second study") over the runs of
    ``split``.

    A cell is **harmed** when the candidate's change (mean over seeds of its error minus its
    base's, paired by seed) exceeds ``phase2.harm_margin`` beyond noise:
    ``change - noise_se * SE > harm_margin``. A candidate **qualifies** when no cell is harmed.
    Among the qualifying candidates the default has the lowest mean change over the cells of
    the regimes in ``phase2.rank_regimes`` (ties: the lowest mean change over every cell, then
    the study's order). If none qualifies, it has the smallest worst-case change (the largest
    change over its cells), whatever its gain.

    Returns:
        dict: ``candidates``: {label: dict(cells={cell: dict(change, se, harmed)},
        mean_change, ranked_change, worst_change, qualifies)}; ``default``; ``qualified``.
    """
    cfg = study.phase2
    seeds = study.splits[split].seeds
    labels = [lb for lb in cfg.candidates
              if any(key.split('/')[3] == lb for key in errors)]
    cells = list(dict.fromkeys('/'.join(key.split('/')[:3]) for key in errors))
    ranked = [c for c in cells
              if '+' in c.split('/')[1] and c.split('/')[1].split('+')[1] in cfg.rank_regimes]
    result = {}
    for label in labels:
        stats = {}
        for cell in cells:
            d, se = paired_change(_values(errors, f'{cell}/{label}', seeds),
                                  _values(errors, f'{cell}/base', seeds))
            stats[cell] = dict(change=d, se=se,
                               harmed=d - study.noise_se * se > cfg.harm_margin)
        result[label] = dict(
            cells=stats, mean_change=statistics.fmean(s['change'] for s in stats.values()),
            ranked_change=(statistics.fmean(stats[c]['change'] for c in ranked)
                           if ranked else None),
            worst_change=max(s['change'] for s in stats.values()),
            qualifies=not any(s['harmed'] for s in stats.values()))
    qualifying = [lb for lb in labels if result[lb]['qualifies']]
    if qualifying:
        default = min(qualifying, key=lambda lb: (
            result[lb]['ranked_change'] if result[lb]['ranked_change'] is not None else 0.0,
            result[lb]['mean_change'], labels.index(lb)))
    else:
        default = min(labels, key=lambda lb: (result[lb]['worst_change'], labels.index(lb)),
                      default=None)
    return dict(candidates=result, default=default, qualified=bool(qualifying))


def rule2_table(summary: dict) -> str:
    """The markdown table of :func:`rule2`: per cell and candidate the change ± SE, ``!``
    where harmed; then the mean change, the ranked cells' mean, the worst change and whether
    the candidate qualifies."""
    candidates = summary['candidates']
    labels = list(candidates)
    cells = list(candidates[labels[0]]['cells']) if labels else []
    lines = ['| cell | ' + ' | '.join(labels) + ' |', '|---|' + '---:|' * len(labels)]
    for cell in cells:
        marks = [f'{c["change"]:+.2f} ± {c["se"]:.2f}{"!" if c["harmed"] else ""}'
                 for c in (candidates[lb]['cells'][cell] for lb in labels)]
        lines.append(f'| {cell} | ' + ' | '.join(marks) + ' |')

    def row(name, values):
        lines.append(f'| {name} | ' + ' | '.join(values) + ' |')

    row('mean', [f'{candidates[lb]["mean_change"]:+.2f}' for lb in labels])
    row('ranked cells', ['' if candidates[lb]['ranked_change'] is None
                         else f'{candidates[lb]["ranked_change"]:+.2f}' for lb in labels])
    row('worst', [f'{candidates[lb]["worst_change"]:+.2f}' for lb in labels])
    row('qualifies', ['yes' if candidates[lb]['qualifies'] else 'no' for lb in labels])
    return '\n'.join(lines)


def _run_or_read(run: StudyRun, out: str, runner: Callable[[Config], dict],
                 skip_absent: Sequence[str] = ()) -> dict:
    """The results document of ``run``: read from ``<out>/<key>/tta_results.json`` when it
    exists (an interrupted phase resumes), else run."""
    work_dir = osp.join(out, run.key)
    path = osp.join(work_dir, 'tta_results.json')
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    cfg = build_config(run.config, run.overlays, run.options, seed=run.seed,
                       skip_absent=skip_absent)
    cfg.work_dir = work_dir
    cfg.experiment_name = run.key.replace('/', '_')
    return runner(cfg)


def run_phase(runs: Sequence[StudyRun], out: str,
              runner: Callable[[Config], dict] = run_config,
              log: Callable[[str], None] = print) -> dict[str, float]:
    """Run (or read back) every run; their errors (100 - accuracy, mean over the stream) by key.

    A run's folder is ``<out>/<key>``; its ``tta_results.json``, when present, is read instead
    of running it again (an interrupted phase resumes).
    """
    errors = {}
    for i, run in enumerate(runs):
        doc = _run_or_read(run, out, runner, OPTIONAL_PARTS)
        errors[run.key] = float(doc['mean_error'])
        log(f'[{i + 1}/{len(runs)}] {run.key}: {errors[run.key]:.2f}')
    return errors


def _values(errors: dict[str, float], prefix: str, seeds: Sequence[int]) -> list[float]:
    missing = [f'{prefix}/seed{s}' for s in seeds if f'{prefix}/seed{s}' not in errors]
    if missing:
        raise KeyError(f'the study has no result for {missing[0]}')
    return [errors[f'{prefix}/seed{s}'] for s in seeds]


def paired_change(new: Sequence[float], base: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of ``new - base``, paired by seed (SE 0 for one seed)."""
    if len(new) != len(base) or not new:
        raise ValueError(f'paired values need equal, non-empty lists, got {len(new)} and '
                         f'{len(base)}')
    diffs = [a - b for a, b in zip(new, base)]
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return statistics.fmean(diffs), se


def _spread(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def benchmark_checks(study: Config, errors: dict[str, float]) -> dict:
    """The benchmark checks of the study (this project's README) for every candidate, and the
    chosen one.

    Returns:
        dict: ``candidates``: {name: dict(checks=[dict(check, passed, ...)], passed=N)};
        ``chosen``: the name with the most checks passed, ties to the first in the study's
        order (A, B, C: the closest to the published protocols first).
    """
    seeds = study.splits.dev.seeds
    k = study.noise_se
    result = {}
    for name in study.candidates:
        def mean(family, setting, method):
            return statistics.fmean(_values(errors, f'{name}/{family}/{setting}/{method}',
                                            seeds))

        def change(family, setting, method, base='source'):
            return paired_change(
                _values(errors, f'{name}/{family}/{setting}/{method}', seeds),
                _values(errors, f'{name}/{family}/{setting}/{base}', seeds))

        checks = []
        source = mean('bn', 'continual', 'source')
        norm, tent = mean('bn', 'continual', 'norm'), mean('bn', 'continual', 'tent')
        checks.append(dict(check='BN continual: Norm and Tent <= 2/3 of the source',
                           source=source, norm=norm, tent=tent,
                           passed=norm <= source * 2 / 3 and tent <= source * 2 / 3))
        d, se = change('gn', 'continual', 'tent')
        checks.append(dict(check='GN continual: Tent below the source beyond noise',
                           change=d, se=se, passed=d < -k * se and d < 0))
        wild = {}
        for setting in ('label_shift', 'batch1', 'mixed'):
            dt, st = change('gn', setting, 'tent')
            ds, ss = change('gn', setting, 'sar')
            wild[setting] = dict(tent_change=dt, tent_se=st, sar_change=ds, sar_se=ss,
                                 passed=(dt > k * st and dt > 0) and not (ds > k * ss and ds > 0))
        checks.append(dict(check='GN wild: Tent worse than the source beyond noise in a wild '
                                 'setting while SAR is not', settings=wild,
                           passed=any(w['passed'] for w in wild.values())))
        result[name] = dict(checks=checks, passed=sum(c['passed'] for c in checks))
    best = max(r['passed'] for r in result.values())
    chosen = next(name for name in study.candidates if result[name]['passed'] == best)
    return dict(candidates=result, chosen=chosen)


def reading_rule(study: Config, errors: dict[str, float], split: str = 'dev') -> dict:
    """The selection rule of projects/stag_study/README.md over the grid's runs of ``split``.

    Returns:
        dict: ``candidates``: {label: dict(cells={cell: dict(change, se, harmful, spread,
        base_spread, too_spread)}, mean_change, qualifies)}; ``default``: the label chosen;
        ``qualified``: whether it qualifies (if none does, the best mean change is chosen).
    """
    seeds = study.splits[split].seeds
    labels = sorted({key.split('/')[3] for key in errors if key.split('/')[3] != 'base'})
    cells = sorted({'/'.join(key.split('/')[:3]) for key in errors})
    result = {}
    for label in labels:
        stats = {}
        for cell in cells:
            base = _values(errors, f'{cell}/base', seeds)
            new = _values(errors, f'{cell}/{label}', seeds)
            d, se = paired_change(new, base)
            spread, base_spread = _spread(new), _spread(base)
            stats[cell] = dict(change=d, se=se, harmful=d > 0 and d > study.noise_se * se,
                               spread=spread, base_spread=base_spread,
                               too_spread=spread > study.spread_ratio * max(
                                   base_spread, study.spread_floor))
        result[label] = dict(
            cells=stats, mean_change=statistics.fmean(s['change'] for s in stats.values()),
            qualifies=not any(s['harmful'] or s['too_spread'] for s in stats.values()))
    qualifying = [lb for lb in labels if result[lb]['qualifies']]
    pool = qualifying or labels
    default = min(pool, key=lambda lb: result[lb]['mean_change']) if pool else None
    return dict(candidates=result, default=default, qualified=bool(qualifying))


def rule_table(summary: dict) -> str:
    """The markdown table of :func:`reading_rule`'s result: per cell and candidate, the change
    ± SE, ``!`` where harmful beyond noise and ``~`` where too spread; then the mean change and
    whether the candidate qualifies."""
    candidates = summary['candidates']
    labels = list(candidates)
    cells = list(candidates[labels[0]]['cells']) if labels else []
    lines = ['| cell | ' + ' | '.join(labels) + ' |', '|---|' + '---:|' * len(labels)]
    for cell in cells:
        marks = []
        for label in labels:
            c = candidates[label]['cells'][cell]
            flag = ('!' if c['harmful'] else '') + ('~' if c['too_spread'] else '')
            marks.append(f'{c["change"]:+.2f} ± {c["se"]:.2f}{flag}')
        lines.append(f'| {cell} | ' + ' | '.join(marks) + ' |')
    lines.append('| mean | ' + ' | '.join(f'{candidates[lb]["mean_change"]:+.2f}'
                                         for lb in labels) + ' |')
    lines.append('| qualifies | ' + ' | '.join('yes' if candidates[lb]['qualifies'] else 'no'
                                              for lb in labels) + ' |')
    return '\n'.join(lines)


def write_summary(out: str, name: str, summary: dict) -> str:
    """``summary`` as ``<out>/<name>.json``; returns the path."""
    os.makedirs(out, exist_ok=True)
    path = osp.join(out, f'{name}.json')
    with open(path, 'w') as f:
        json.dump(summary, f, indent=1)
    return path


def study_table(study: Config, out: str, default: str,
                phases: Sequence[tuple[str, str]] = (('readings', 'dev'),
                                                     ('held_out', 'held_out'))) -> str:
    """The "Where STAG helps" table: per split, family, setting and base method, the base's
    and the default's error (mean ± SE over the split's seeds), the paired change and the
    images/s of each, read from the runs' results under ``<out>/<phase>/``.

    Args:
        study (Config): The study config.
        out (str): The study's folder.
        default (str): The default's label (``'feature-2'``).
        phases (Sequence[tuple]): ``(phase, split)`` pairs, in the table's order.

    Returns:
        str: A markdown table.
    """
    lines = ['| split | family | setting | method | error | + STAG | change | images/s | '
             '+ STAG images/s |', '|---|---|---|---|---:|---:|---:|---:|---:|']
    for phase, split in phases:
        seeds = study.splits[split].seeds
        for family in study.splits[split].families:
            for setting in study.settings:
                for method in study.base_methods:
                    docs = {}
                    for label in ('base', default):
                        docs[label] = []
                        for seed in seeds:
                            path = osp.join(out, phase, family, setting, method, label,
                                            f'seed{seed}', 'tta_results.json')
                            if not osp.isfile(path):
                                raise FileNotFoundError(f'{path}: run the {phase} phase first')
                            with open(path) as f:
                                docs[label].append(json.load(f))
                    base = [d['mean_error'] for d in docs['base']]
                    new = [d['mean_error'] for d in docs[default]]
                    change, se = paired_change(new, base)
                    cells = [_mean_se(base), _mean_se(new), f'{change:+.2f} ± {se:.2f}',
                             f"{statistics.fmean(d['images_per_s'] for d in docs['base']):.0f}",
                             f"{statistics.fmean(d['images_per_s'] for d in docs[default]):.0f}"]
                    lines.append(f'| {split} | {family} | {setting} | {method} | '
                                 + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def _mean_se(values: Sequence[float]) -> str:
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f'{statistics.fmean(values):.2f} ± {se:.2f}'
