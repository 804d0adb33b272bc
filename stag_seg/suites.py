"""Suites of runs: every row (a method, and optionally a variant of it, such as the method with a
regularizer) in every setting, model family and seed, each run through MMEngine's ``Runner`` (in
this process, or ``jobs`` at a time in worker processes), and the suite's tables.
``tools/run_suite.py`` is its command line; ``import stag_seg`` does not load this module.

A suite is a config file (``configs/suites/*.py``) with these keys:

- ``table``: the table it writes: ``'settings'`` (the error per setting, mean over seeds: the
  Digits-C table, :func:`settings_table`) or ``'rounds'`` (mIoU per round and images/s, and
  the comparison of every run per (round, domain): the segmentation demo, :func:`rounds_table`);
- ``config_path``: the rows' config files, ``{}`` standing for a run's name
  (``'configs/digits_c/small-convnet_{}.py'``);
- ``rows``: ``dict(label=..., plain=NAME, variant=NAME or None)``, in the table's order; a row
  with ``families=[...]`` appears only for those model families, one with ``optional=KEY``
  only when asked for (``--with KEY``);
- ``variant_label`` and ``variant_name`` (optional): how the tables head the variants' columns
  (``'+ STAG'``) and their change over the plain runs (``'STAG'``); defaults
  ``'+ variant'`` and ``'variant'``;
- ``settings``: ``{setting: [overlay, ...]}`` in the table's order (overlays: config files
  merged over each config, :func:`stag_seg.engine.merge_overlays`);
- ``families`` (optional): ``{family: dict(label=..., overlays=[...])}``, the first the default;
- ``seeds`` (optional): the default seeds, each a run's ``randomness.seed`` (and so its stream
  seed, :func:`stag_seg.engine.prepare_config`); without it every run keeps its config's;
- ``work_dir``: a run's folder under the output folder, from ``{setting}``, ``{name}`` and
  ``{seed}``;
- ``cfg_options`` (optional): options of every run, merged before the command line's;
- ``requires`` (optional): ``[dict(path=..., make=...)]``, data that must exist first;
- ``out``: the default output folder; ``caption`` and ``record`` (the ``'settings'`` table):
  the line under the table, and the config values its JSON records
  (``{name: dict(key=DOTTED_KEY, setting=None)}``, read from the first row's config).

Options under :data:`OPTIONAL_PARTS` apply only to the runs whose config has that part (Source
has no optimizer; only the Fisher configs have Fisher data; only the configs with a regularizer
have a first one, so ``model.tta_method.regularizers.0.weight=1.0`` changes its options alone).

Every table is written from the suite's JSON document (``table.json``), so a committed document
regenerates its tables (:func:`settings_markdown`, :func:`rounds_markdown`,
:func:`stag_seg.evaluation.write_comparison`).
"""
from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import os.path as osp
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from mmengine.config import Config

from .dotted import get_key
from .engine.configuration import build_config
from .evaluation import comparison_entry, write_comparison

__all__ = ['OPTIONAL_PARTS', 'Run', 'SuiteError', 'build_run_config', 'load_suite', 'plan_runs',
           'rounds_document', 'rounds_markdown', 'run_config', 'run_in_process', 'run_suite',
           'select_rows', 'settings_markdown']

#: Option keys that apply only to the runs whose config has them.
OPTIONAL_PARTS = ('model.adapt_optim_wrapper', 'model.tta_method.fisher_data',
                  'model.tta_method.regularizers.0')
#: The tables a suite can ask for.
TABLES = ('settings', 'rounds')
_REQUIRED = ('table', 'config_path', 'rows', 'settings', 'work_dir')


class SuiteError(ValueError):
    """A suite, a selection from it or the data it needs is not what the runner can use; the
    message names the key, the value and the fix."""


@dataclass(frozen=True)
class Run:
    """One run of a suite.

    Args:
        setting (str): The setting's name.
        name (str): The run's name in the suite (a config of ``config_path``).
        seed (int, optional): Its ``randomness.seed``; None keeps the config's.
        config (str): The config file.
        overlays (tuple[str, ...]): Config files merged over it (family, then setting).
        work_dir (str): Where its results go.
    """

    setting: str
    name: str
    seed: int | None
    config: str
    overlays: tuple[str, ...]
    work_dir: str


def load_suite(path: str) -> Config:
    """Read a suite config and check its keys.

    Raises:
        SuiteError: ``path`` does not exist, a key the suite needs is missing, or a key has a
            value the runner cannot use.
    """
    if not osp.isfile(path):
        raise SuiteError(f'suite {path} not found: give a suite config, e.g. '
                         'configs/suites/digits-c.py')
    suite = Config.fromfile(path)
    missing = [k for k in _REQUIRED if k not in suite]
    if missing:
        raise SuiteError(f'suite {path} has no {", ".join(missing)}: see '
                         'stag_seg.suites for the keys of a suite')
    if suite['table'] not in TABLES:
        raise SuiteError(f'suite {path}: table={suite["table"]!r}; choose one of {TABLES}')
    if '{}' not in suite['config_path']:
        raise SuiteError(f'suite {path}: config_path={suite["config_path"]!r} has no {{}} for '
                         "the run's name, e.g. 'configs/digits_c/small-convnet_{}.py'")
    for i, row in enumerate(suite['rows']):
        if not isinstance(row, dict) or 'label' not in row or 'plain' not in row:
            raise SuiteError(f'suite {path}: rows[{i}]={row!r} needs a label and a plain '
                             "config name: dict(label='Tent', plain='tent', "
                             "variant='tent_stag')")
    if not suite['settings']:
        raise SuiteError(f'suite {path}: settings is empty; give {{name: [overlay, ...]}}')
    if suite['table'] == 'rounds' and '{name}' not in suite['work_dir']:
        raise SuiteError(f'suite {path}: work_dir={suite["work_dir"]!r} has no {{name}}')
    return suite


def _choose(what: str, given: Sequence[str] | None, choices: Sequence[str]) -> list[str]:
    """``given`` (all ``choices`` when None), each checked against ``choices``."""
    if given is None:
        return list(choices)
    unknown = [g for g in given if g not in choices]
    if unknown:
        raise SuiteError(f'{what} {unknown[0]!r} is not in the suite; choose from '
                         f'{", ".join(choices)}')
    return list(given)


def select_rows(suite: Config,
                methods: Sequence[str] | None = None,
                family: str | None = None,
                extra: Sequence[str] = ()) -> list[dict]:
    """The rows of the table: those of ``family``, the optional ones in ``extra``, and with
    ``methods`` only those whose plain config is named there.

    Raises:
        SuiteError: a method or an extra row that the suite does not have.
    """
    rows = [dict(r) for r in suite['rows']]
    optional = sorted({r['optional'] for r in rows if r.get('optional')})
    _choose('--with', extra, optional)
    _choose('--methods', methods, list(dict.fromkeys(r['plain'] for r in rows)))
    return [r for r in rows
            if (not r.get('optional') or r['optional'] in extra)
            and (not r.get('families') or family in r['families'])
            and (methods is None or r['plain'] in methods)]


def _families(suite: Config) -> dict:
    return dict(suite.get('families') or {})


def _seeds(suite: Config, seeds: Sequence[int] | None) -> list[int | None]:
    """The seeds to run: ``seeds``, else the suite's; ``[None]`` where the suite has none."""
    if seeds is None:
        seeds = suite.get('seeds')
    elif suite.get('seeds') is None:
        raise SuiteError('--seeds: the suite runs every config with its own randomness.seed '
                         '(it has no seeds); set it with --cfg-options randomness.seed=K')
    seeds = [None] if seeds is None else list(seeds)
    if len(seeds) > 1 and '{seed}' not in suite['work_dir']:
        raise SuiteError(f'--seeds {seeds}: work_dir={suite["work_dir"]!r} has no {{seed}}, so '
                         'the runs of several seeds would share a folder')
    return seeds


def _family_overlays(suite: Config, family: str | None) -> tuple[str, ...]:
    """The overlays of ``family`` (none without one)."""
    families = _families(suite)
    if family is None:
        return ()
    if family not in families:
        raise SuiteError(f'--family {family!r}: the suite has '
                         + (f'the families {", ".join(families)}' if families else 'no families'))
    return tuple(families[family]['overlays'])


def plan_runs(suite: Config,
              rows: Sequence[dict],
              out: str,
              settings: Sequence[str] | None = None,
              family: str | None = None,
              seeds: Sequence[int] | None = None) -> list[Run]:
    """Every run of ``rows`` in order (setting, row, plain then variant, seed), each once.

    Raises:
        SuiteError: an unknown setting or family, seeds for a suite without them, or several
            seeds where ``work_dir`` has no ``{seed}``.
    """
    settings = _choose('--settings', settings, list(suite['settings']))
    overlays = _family_overlays(suite, family)
    seeds = _seeds(suite, seeds)
    runs, seen = [], set()
    for setting in settings:
        for row in rows:
            for name in (row['plain'], row.get('variant')):
                for seed in seeds:
                    if name is None or (setting, name, seed) in seen:
                        continue  # a run two rows share
                    seen.add((setting, name, seed))
                    work_dir = osp.join(out, suite['work_dir'].format(
                        setting=setting, name=name, seed=seed))
                    runs.append(Run(setting, name, seed, suite['config_path'].format(name),
                                    overlays + tuple(suite['settings'][setting]), work_dir))
    return runs


def run_config(cfg: Config) -> dict:
    """Run ``cfg`` through MMEngine's ``Runner`` in this process; its results document."""
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    with warnings.catch_warnings():
        # every run builds a visualizer of the same name in this one process
        warnings.filterwarnings('ignore', message='.*instance named of visualizer has been')
        runner = Runner.from_cfg(cfg)
    runner.test()
    # one runner per run in this process: close its log file
    for handler in MMLogger.get_current_instance().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.close()
    with open(osp.join(cfg.work_dir, 'tta_results.json')) as f:
        return json.load(f)


def run_in_process(suite_path: str, run: Run, cfg_options: dict | None,
                   threads: int) -> tuple[dict, float]:
    """Run ``run`` of the suite at ``suite_path`` in a worker process of :func:`run_suite`
    with ``threads`` torch threads, as ``tools/run_suite.py`` runs it in its own; its results
    document and seconds."""
    import torch

    from . import compat

    torch.set_num_threads(threads)
    compat.prepare_environment()
    t0 = time.time()
    doc = run_config(build_run_config(load_suite(suite_path), run, cfg_options))
    return doc, time.time() - t0


def build_run_config(suite: Config, run: Run, cfg_options: dict | None = None) -> Config:
    """The prepared config of ``run``: its config, its overlays, the suite's options, then
    ``cfg_options`` (each of :data:`OPTIONAL_PARTS` only where the config has it), its seed;
    then :func:`stag_seg.engine.prepare_config`, as ``tools/test_tta.py`` does."""
    options = dict(suite.get('cfg_options') or {}, **(cfg_options or {}))
    cfg = build_config(run.config, run.overlays, options, seed=run.seed,
                       skip_absent=OPTIONAL_PARTS)
    cfg.work_dir = run.work_dir
    seed = '' if run.seed is None else f'_seed{run.seed}'
    cfg.experiment_name = f'{run.setting}_{run.name}{seed}'
    return cfg


def _check_same_run(doc: dict, cfg: Config, where: str, remedy: str) -> dict:
    """``doc``, after checking that its checkpoint and seed, where it records them, are
    ``cfg``'s; ``where`` and ``remedy`` complete the error."""
    mine = dict(checkpoint=cfg.get('load_from'), seed=cfg.get('randomness', {}).get('seed'))
    for key, value in mine.items():
        if key not in doc:
            continue
        theirs = doc[key]
        if key == 'checkpoint' and theirs and value:
            theirs, value = osp.normpath(theirs), osp.normpath(value)
        if theirs != value:
            raise SuiteError(f'{where} has {key} {doc[key]!r}, this run has {mine[key]!r} '
                             f'(another --family or seed?); {remedy}')
    return doc


def _reused(run: Run, cfg: Config) -> dict | None:
    """The results already in ``run.work_dir``, checked to be this run's; None if absent."""
    path = osp.join(run.work_dir, 'tta_results.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        doc = json.load(f)
    doc.setdefault('checkpoint', None)  # a results file always records both
    doc.setdefault('seed', None)
    return _check_same_run(doc, cfg, f'--reuse: {path}', 'give another --out or drop --reuse')


def _suite_name(suite_path: str) -> str:
    """How a rounds table names the suite that made it: its path from the working directory."""
    return osp.normpath(osp.relpath(suite_path))


def _table_runs(path: str, suite_path: str, suite: Config, cfg_options: dict | None) -> dict:
    """``{config: results}`` of the runs of a committed rounds table (``table.json``), checked
    to be this suite's with the same options."""
    if suite['table'] != 'rounds':
        raise SuiteError(f'--from-table completes a rounds table; the suite {suite_path} '
                         f'writes a {suite["table"]!r} table')
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as err:
        raise SuiteError(f'--from-table: cannot read {path}: {err}') from err
    if not isinstance(doc, dict) or 'runs' not in doc or 'suite' not in doc:
        raise SuiteError(f'--from-table: {path} is not a rounds table that names its suite '
                         '(table.json with the keys suite and runs)')
    if doc['suite'] != _suite_name(suite_path):
        raise SuiteError(f'--from-table: {path} was made by the suite {doc["suite"]}, not by '
                         f'{_suite_name(suite_path)}')
    options = _json_options(suite, cfg_options)
    if doc.get('cfg_options') != options:
        raise SuiteError(f'--from-table: {path} was made with the options '
                         f'{doc.get("cfg_options")}, this run has {options}')
    return {osp.normpath(run['config']): run for run in doc['runs']}


def _json_options(suite: Config, cfg_options: dict | None) -> dict:
    """Every run's options (the suite's, then the command line's) as a table records them."""
    return json.loads(json.dumps(dict(suite.get('cfg_options') or {}, **(cfg_options or {}))))


def run_suite(suite_path: str,
              out: str | None = None,
              settings: Sequence[str] | None = None,
              methods: Sequence[str] | None = None,
              seeds: Sequence[int] | None = None,
              family: str | None = None,
              extra: Sequence[str] = (),
              reuse: bool = False,
              from_table: str | None = None,
              cfg_options: dict | None = None,
              jobs: int = 1,
              log: Callable[[str], None] = print) -> dict:
    """Run a suite (paths relative to the working directory) and write its table.

    Args:
        suite_path (str): The suite config.
        out (str, optional): Output folder (default: the suite's ``out``).
        settings (Sequence[str], optional): The settings to run (default: all, in order).
        methods (Sequence[str], optional): The rows to run, by their plain config's name
            (default: all).
        seeds (Sequence[int], optional): The seeds (default: the suite's).
        family (str, optional): The model family (default: the suite's first).
        extra (Sequence[str]): The optional rows to add (their ``optional`` key).
        reuse (bool): Keep results already in ``out``: a run whose ``tta_results.json``
            exists is not run again. Defaults to False.
        from_table (str, optional): A rounds table's ``table.json`` that this suite made
            with the same options: a run that is in it and not in ``out`` is taken from it,
            not run again (so a committed table gains rows without its other runs).
        cfg_options (dict, optional): Options of every run, after the suite's.
        jobs (int): Runs at once, each in its own process with ``cores / jobs`` torch
            threads (:func:`run_in_process`). Defaults to 1: every run in this process, with
            its threads.
        log (Callable): Where progress lines go. Defaults to ``print``.

    Returns:
        dict: ``table`` (the markdown), ``files`` (what was written) and ``document`` (the
        table's JSON).

    Raises:
        SuiteError: a selection the suite does not have, data it requires is missing (the
            message names the make target that makes it), or results to reuse (in ``out``
            or ``from_table``) that are another run's.
    """
    start = time.time()
    suite = load_suite(suite_path)
    out = out or suite.get('out')
    if not out:
        raise SuiteError(f'suite {suite_path} has no out: give the output folder')
    for need in suite.get('requires') or []:
        if not osp.exists(need['path']):
            raise SuiteError(f'no {need["path"]}: run `{need["make"]}` first')
    families = _families(suite)
    if family is None and families:
        family = next(iter(families))
    rows = select_rows(suite, methods, family, extra)
    if not rows:
        raise SuiteError(f'no rows to run: --methods {list(methods or [])} has none for the '
                         f'family {family!r}')
    settings = _choose('--settings', settings, list(suite['settings']))
    run_seeds = _seeds(suite, seeds)
    if suite['table'] == 'rounds' and (len(settings) > 1 or len(run_seeds) > 1):
        raise SuiteError(f'the rounds table has one setting and one seed, got the settings '
                         f'{settings} and the seeds {run_seeds}; run one of each')
    if jobs < 1:
        raise SuiteError(f'jobs must be at least 1, got {jobs}')
    runs = plan_runs(suite, rows, out, settings, family, seeds)
    docs: dict[tuple, dict] = {}

    def done(run: Run, doc: dict, took: str) -> None:
        docs[(run.setting, run.name, run.seed)] = doc
        seed = '' if run.seed is None else f' seed {run.seed}'
        score = (f'error {100.0 - doc["mean"]:6.2f}' if doc['metric'] == 'accuracy'
                 else f'{doc["metric"]} {doc["mean"]:6.2f}')
        log(f'{run.setting:12s} {run.name:18s}{seed}: {score} ({took})')

    table_runs = (_table_runs(from_table, suite_path, suite, cfg_options) if from_table
                  else {})
    pending = []
    for run in runs:
        taken = table_runs.get(osp.normpath(run.config))
        cfg = build_run_config(suite, run, cfg_options) if reuse or taken else None
        doc = _reused(run, cfg) if reuse else None
        if doc is not None:
            done(run, doc, 'reused')
        elif taken is not None:
            doc = _check_same_run(taken, cfg,
                                  f'--from-table: {from_table}',
                                  'give the table this suite made or drop --from-table')
            done(run, doc, f'from {osp.relpath(from_table)}')
        else:
            pending.append(run)
    if jobs == 1 or len(pending) <= 1:
        for run in pending:
            t0 = time.time()
            doc = run_config(build_run_config(suite, run, cfg_options))
            done(run, doc, f'{time.time() - t0:.1f} s')
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        # spawn, not fork: a forked child would inherit this process's torch thread pools
        with ProcessPoolExecutor(max_workers=min(jobs, len(pending)),
                                 mp_context=multiprocessing.get_context('spawn')) as pool:
            futures = {pool.submit(run_in_process, suite_path, run, cfg_options, threads): run
                       for run in pending}
            for future in as_completed(futures):
                doc, seconds = future.result()
                done(futures[future], doc, f'{seconds:.1f} s in a process of {threads} '
                     f'thread{"s" if threads > 1 else ""}')
    os.makedirs(out, exist_ok=True)
    if suite['table'] == 'settings':
        result = _write_settings(suite, rows, runs, docs, out, settings, run_seeds, family,
                                 cfg_options, start)
    else:
        result = _write_rounds(suite, rows, runs, docs, out,
                               identity=dict(suite=_suite_name(suite_path),
                                             cfg_options=_json_options(suite, cfg_options)))
    log(result['table'])
    log('written: ' + ', '.join(result['files']) + f' ({(time.time() - start) / 60:.1f} min)')
    return result


# ------------------------------------------------------------------------------------------
# the 'settings' table: the error per setting, mean over seeds
# ------------------------------------------------------------------------------------------


def _labels(doc: dict) -> tuple[str, str]:
    return doc.get('variant_label', '+ variant'), doc.get('variant_name', 'variant')


def settings_markdown(document: dict) -> str:
    """The 'settings' table of a suite's JSON document: the error per setting (mean over seeds
    ± its standard error) of each row and its variant, the change the variant makes, and the
    images/s of each in the first setting (mean over seeds).

    The document holds ``settings``, ``rows`` (``dict(label, plain, variant)`` in the table's
    order), ``results`` (``{setting: {name: [dict(seed=..., error=..., images_per_s=...),
    ...]}}``), the caption and the variants' label.
    """
    results, label = document['results'], _labels(document)[0]
    settings = [s for s in document['settings'] if s in results]

    def cell(setting: str, name: str | None) -> tuple[str, float | None]:
        values = [r['error'] for r in results[setting].get(name, [])] if name else []
        if not values:
            return '', None
        mean = statistics.fmean(values)
        spread = (f' ± {statistics.stdev(values) / math.sqrt(len(values)):.2f}'
                  if len(values) > 1 else '')
        return f'{mean:.2f}{spread}', mean

    def speed(name: str | None) -> str:
        values = [r['images_per_s'] for r in results[settings[0]].get(name, [])
                  if r.get('images_per_s') is not None] if name and settings else []
        return f'{statistics.fmean(values):.0f}' if values else ''

    head = ' | '.join(f'{s} | {label}' for s in settings)
    first = settings[0] if settings else ''
    lines = [f'| method | {head} | mean | {label} mean | images/s ({first}) | {label} images/s |',
             '|---|' + '---:|' * (2 * len(settings) + 4)]
    for row in document['rows']:
        plain, variant = row['plain'], row.get('variant')
        cells, means, variant_means = [], [], []
        for setting in settings:
            text, mean = cell(setting, plain)
            variant_text, variant_mean = cell(setting, variant)
            if variant_mean is not None and mean is not None:
                variant_text += f' ({variant_mean - mean:+.2f})'
            cells += [text, variant_text]
            means.append(mean)
            variant_means.append(variant_mean)
        total = f'{statistics.fmean(means):.2f}' if None not in means else ''
        variant_total = (f'{statistics.fmean(variant_means):.2f}'
                         if variant and None not in variant_means else '')
        lines.append(f'| {row["label"]} | ' + ' | '.join(cells)
                     + f' | {total} | {variant_total} | {speed(plain)} | {speed(variant)} |')
    if document.get('caption'):
        lines += ['', document['caption']]
    return '\n'.join(lines)


def _write_settings(suite: Config, rows: list[dict], runs: list[Run], docs: dict, out: str,
                    settings: list[str], seeds: list, family: str | None,
                    cfg_options: dict | None, start: float) -> dict:
    """``table.{md,json}`` of the 'settings' table."""
    results: dict = {}
    for run in runs:
        doc = docs[(run.setting, run.name, run.seed)]
        results.setdefault(run.setting, {}).setdefault(run.name, []).append(
            dict(seed=run.seed, error=100.0 - doc['mean'], images_per_s=doc['images_per_s']))
    recorded = {}
    for name, spec in (suite.get('record') or {}).items():
        setting = spec.get('setting') or settings[0]
        if setting not in suite['settings']:
            raise SuiteError(f'record.{name}.setting={setting!r} is not a setting of the suite '
                             f'({", ".join(suite["settings"])})')
        overlays = _family_overlays(suite, family) + tuple(suite['settings'][setting])
        run = Run(setting, rows[0]['plain'], seeds[0], suite['config_path'].format(
            rows[0]['plain']), overlays, out)
        try:
            recorded[name] = get_key(build_run_config(suite, run, cfg_options).to_dict(),
                                     spec['key'], what=f'record.{name}')
        except KeyError as err:
            raise SuiteError(f"{err.args[0]}; name a key of the rows' configs") from None
    families = _families(suite)
    model = families[family]['label'] if family else ''
    caption = suite.get('caption', '').format(
        model=model, seeds=', '.join(map(str, seeds)), **recorded)
    document = dict(family=family, settings=settings, seeds=seeds, **recorded,
                    minutes=(time.time() - start) / 60, results=results,
                    rows=[_row_entry(row) for row in rows], caption=caption,
                    **_variant_keys(suite))
    table = settings_markdown(document)
    files = [osp.join(out, 'table.md'), osp.join(out, 'table.json')]
    with open(files[0], 'w') as f:
        f.write(table + '\n')
    with open(files[1], 'w') as f:
        json.dump(document, f, indent=2)
    return dict(table=table, files=files, document=document)


# ------------------------------------------------------------------------------------------
# the 'rounds' table: the metric per round, the change a variant makes, images/s
# ------------------------------------------------------------------------------------------


def _per_round(doc: dict) -> list[float]:
    """The mean of the metric over the domains of each round."""
    metric = doc['metric']
    return [sum(r[metric] for r in doc['records'] if r['round'] == k)
            / sum(1 for r in doc['records'] if r['round'] == k)
            for k in range(1, doc['rounds'] + 1)]


def _row_entry(row: dict) -> dict:
    return {k: row[k] for k in ('label', 'plain', 'variant') if row.get(k)}


def _variant_keys(suite: Config) -> dict:
    return dict(variant_label=suite.get('variant_label', '+ variant'),
                variant_name=suite.get('variant_name', 'variant'))


def rounds_document(rows: Sequence[dict], labels: dict | None = None) -> dict:
    """The JSON document of the 'rounds' table: the metric per round and overall of each row
    and its variant, images/s, and the runs' records for the comparison.

    Args:
        rows (Sequence[dict]): ``dict(label, plain, plain_doc, variant_doc=None)``: a row's
            name, its plain config's name and the results documents of its runs.
        labels (dict, optional): ``variant_label`` and ``variant_name``.
    """
    rounds = max(row['plain_doc']['rounds'] for row in rows)
    summary = []
    for row in rows:
        plain, variant = row['plain_doc'], row.get('variant_doc')
        summary.append(dict(
            method=row['label'], config=row['plain'], mean=plain['mean'],
            per_round=_per_round(plain), images_per_s=plain['images_per_s'],
            variant_mean=variant['mean'] if variant else None,
            variant_per_round=_per_round(variant) if variant else None,
            variant_images_per_s=variant['images_per_s'] if variant else None))
    runs = [comparison_entry(doc) for row in rows
            for doc in (row['plain_doc'], row.get('variant_doc')) if doc]
    return dict(rounds=rounds, **(labels or {}), rows=summary, runs=runs)


def rounds_markdown(document: dict) -> str:
    """The 'rounds' table of its JSON document (:func:`rounds_document`)."""
    label, name = _labels(document)
    rounds = document['rounds']
    head = ' | '.join(f'r{k}' for k in range(1, rounds + 1))
    lines = [f'| method | {head} | mean | {label}: {head} | mean | {name} change | images/s '
             f'| {label} images/s |',
             '|---|' + '---:|' * (2 * rounds + 5)]
    for row in document['rows']:
        cells = [f'{v:.2f}' for v in row['per_round']] + [f'**{row["mean"]:.2f}**']
        if row.get('variant_mean') is not None:
            cells += [f'{v:.2f}' for v in row['variant_per_round']] + [
                f'**{row["variant_mean"]:.2f}**', f'{row["variant_mean"] - row["mean"]:+.2f}']
        else:
            cells += [''] * (rounds + 2)
        cells += [f'{row["images_per_s"]:.2f}',
                  f'{row["variant_images_per_s"]:.2f}'
                  if row.get('variant_images_per_s') is not None else '']
        lines.append(f'| {row["method"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _write_rounds(suite: Config, rows: list[dict], runs: list[Run], docs: dict,
                  out: str, identity: dict) -> dict:
    """``table.{md,json}`` and ``comparison.{md,csv,png}`` of the 'rounds' table; its JSON
    starts with ``identity`` (the suite and the options that made it)."""
    setting, seed = runs[0].setting, runs[0].seed
    table_rows = [dict(row, plain_doc=docs[(setting, row['plain'], seed)],
                       variant_doc=docs[(setting, row['variant'], seed)]
                       if row.get('variant') else None)
                  for row in rows]
    document = dict(identity, **rounds_document(table_rows, _variant_keys(suite)))
    table = rounds_markdown(document)
    files = [osp.join(out, 'table.md'), osp.join(out, 'table.json')]
    with open(files[0], 'w') as f:
        f.write(table + '\n')
    with open(files[1], 'w') as f:
        json.dump(document, f, indent=2)
    files += write_comparison(document, out)
    return dict(table=table, files=files, document=document)
