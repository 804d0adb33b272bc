"""The files of a run: ``tta_results.{json,csv,md,png}`` and ``environment.json`` when it
completes, ``tta_results.partial.json`` when it stops early, and reading them back."""
from __future__ import annotations

import csv
import json
import os
import os.path as osp
import platform
import sys

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import print_log
from mmengine.utils.dl_utils import collect_env

from .stream_results import StreamResults, validate_results
from .tables import format_records, plot_results, run_label

__all__ = ['load_results', 'results_document', 'write_partial', 'write_results', 'write_run']

def _environment(runner, model) -> dict:
    """Where and how the run was made (device, processes, seed, determinism, command)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    return dict(
        device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                     else platform.processor() or platform.machine()),
        world_size=get_world_size(),
        launcher=runner.launcher,
        seed=runner.seed,
        deterministic=bool(runner.deterministic),
        torch_threads=torch.get_num_threads(),
        command=' '.join(sys.argv),
        experiment=runner.experiment_name)


def _config_dump(runner) -> str | None:
    """The merged config (every --cfg-options applied) that the runner dumped."""
    cfg = runner.cfg
    name = osp.basename(cfg.filename) if cfg.filename else f'{runner.timestamp}.py'
    path = osp.join(runner.work_dir, name)
    return path if osp.isfile(path) else None


def results_document(runner, model, results: StreamResults, **protocol) -> dict:
    """The results document of the records so far.

    Args:
        runner (Runner): The runner of the run.
        model (nn.Module): The tested model, unwrapped (its ``tta_method`` names the method).
        results (StreamResults): The records.
        **protocol: The loop's settings the document states (``episodic``,
            ``optimizer_reset``).
    """
    method = getattr(model, 'tta_method', None)
    cfg = runner.cfg
    return results.to_dict(
        method=method.name if method is not None else 'Source',
        regularizers=[getattr(r, 'name', type(r).__name__)
                      for r in getattr(method, 'regularizers', [])],
        config=cfg.filename if cfg.filename else None,
        config_dump=_config_dump(runner),
        checkpoint=cfg.get('load_from'),
        seed=runner.seed,
        **protocol,
        environment=_environment(runner, model),
        guard_resets=sum(r.get('guard_resets', 0) for r in results.records),
        nonfinite_steps=sum(r.get('nonfinite_steps', 0) for r in results.records),
        bad_inputs=sum(r.get('bad_inputs', 0) for r in results.records))


def write_results(doc: dict, out_dir: str, stem: str = 'tta_results') -> list[str]:
    """Write ``doc`` (validated first) as JSON, CSV, markdown and a PNG plot; return the paths."""
    validate_results(doc)
    os.makedirs(out_dir, exist_ok=True)
    base = osp.join(out_dir, stem)
    metric = doc['metric']
    with open(base + '.json', 'w') as f:
        json.dump(doc, f, indent=2)
    with open(base + '.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        error = metric == 'accuracy'
        writer.writerow(['round', 'domain', 'num_samples', metric] + ['error'] * error
                        + ['seconds'])
        for rec in doc['records']:
            writer.writerow([rec['round'], rec['domain'], rec['num_samples'],
                             f'{rec[metric]:.4f}'] + [f'{100.0 - rec[metric]:.4f}'] * error
                            + [f'{rec.get("seconds", 0.0):.3f}'])
    with open(base + '.md', 'w') as f:
        f.write(f'# {run_label(doc)}: {metric} along the stream\n\n')
        f.write(f'config: `{doc["config"]}`, checkpoint: `{doc["checkpoint"]}`, seed: '
                f'{doc["seed"]}\n\n')
        f.write(format_records(doc['records'], metric) + '\n\n')
        error = f' (error {100.0 - doc["mean"]:.2f})' if metric == 'accuracy' else ''
        f.write(f'mean {metric}: {doc["mean"]:.2f}{error}; {doc["images_per_s"]:.2f} '
                'images/s\n')
    plot_results([doc], base + '.png')
    return [base + ext for ext in ('.json', '.csv', '.md', '.png')]


def load_results(path: str) -> dict:
    """Read a ``tta_results.json`` and check its schema."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'results file not found: {path}')
    with open(path) as f:
        doc = json.load(f)
    try:
        validate_results(doc)
    except ValueError as err:
        raise ValueError(f'{path}: {err}') from None
    return doc


def write_run(doc: dict, work_dir: str) -> list[str]:
    """``tta_results.{json,csv,md,png}`` and ``environment.json`` in ``work_dir``; the partial
    results of an interrupted earlier attempt there are removed (these are complete)."""
    paths = write_results(doc, work_dir)
    partial = osp.join(work_dir, 'tta_results.partial.json')
    if osp.isfile(partial):
        os.remove(partial)
    env_path = osp.join(work_dir, 'environment.json')
    with open(env_path, 'w') as f:
        json.dump(dict(doc['environment'], versions=doc['versions'],
                       collect_env={k: str(v) for k, v in collect_env().items()}), f, indent=2)
    paths.append(env_path)
    print_log('results written to ' + ', '.join(osp.basename(p) for p in paths) + ' in '
              + work_dir, logger='current')
    return paths


def write_partial(doc: dict, work_dir: str, failure: str) -> str:
    """The records gathered so far, and why the run stopped, atomically; returns the path.

    With several processes the failing rank writes ``tta_results.partial.rank<k>.json``.
    """
    doc = dict(doc, failure=failure, complete=False)
    name = ('tta_results.partial.json' if get_world_size() == 1
            else f'tta_results.partial.rank{get_rank()}.json')
    path = osp.join(work_dir, name)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)
    return path
