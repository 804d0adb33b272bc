"""The embedded Cityscapes→ACDC-like benchmark: clean source scenes, 4 weather targets.

:func:`write_synthetic_acdc` writes, under ``out`` (see data/README.md for the layouts)::

    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png     clean source images
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png  their labels
    rgb_anon/<cond>/<split>/<GOPRxxxx>/<GOPRxxxx>_frame_<nnnnnn>_rgb_anon.png   target images
    gt/<cond>/<split>/<GOPRxxxx>/<GOPRxxxx>_frame_<nnnnnn>_gt_labelTrainIds.png  their labels
    meta.json                                                                 arguments, counts

mmseg's ``CityscapesDataset`` reads the source split as it is; ``stag_seg``'s ``ACDCDataset``
reads the targets. Every image has its own seed derived from ``seed``, its domain and its index,
so the output does not depend on ``workers``. ``tools/make_synthetic_acdc.py`` is its command
line; the errors name its options.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import os.path as osp
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .scenes import render_scene
from .weather import CONDITIONS, DEFAULT_SEVERITY, apply_condition

__all__ = ['ACDC_RETAINED', 'calibration_tasks', 'choose_severity', 'parse_severity',
           'write_synthetic_acdc']

SOURCE_CITIES = {'train': ('ashford', 'brightwater', 'coldharbour'), 'val': ('dunmore', )}
# First GoPro sequence number of each condition (ACDC names its folders after the recordings).
SEQUENCE_BASE = {'fog': 475, 'night': 351, 'rain': 400, 'snow': 122}
CLASS_NAMES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
               'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck',
               'bus', 'train', 'motorcycle', 'bicycle')
GENERATED = ('leftImg8bit', 'gtFine', 'rgb_anon', 'gt', 'meta.json')
SOURCE_LAYOUT = ('leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png',
                 'gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelTrainIds.png')
# Share of its clean score the source model keeps on each ACDC condition: the CoTTA paper's
# source mIoU (SegFormer-B5: fog 69.1, night 40.3, rain 59.7, snow 57.8; Wang et al., CVPR 2022)
# over that model's single-scale Cityscapes val mIoU, 82.4 (Xie et al., NeurIPS 2021).
ACDC_RETAINED = {'fog': 69.1 / 82.4, 'night': 40.3 / 82.4, 'rain': 59.7 / 82.4, 'snow': 57.8 / 82.4}
TARGET_LAYOUT = ('rgb_anon/{cond}/{split}/{seq}/{seq}_frame_{frame}_rgb_anon.png',
                 'gt/{cond}/{split}/{seq}/{seq}_frame_{frame}_gt_labelTrainIds.png')


@dataclass(frozen=True)
class Task:
    """One image to render and the two files to write."""
    domain: str  # 'source' or a condition
    split: str
    index: int
    img_path: str
    label_path: str
    seed: tuple
    height: int
    width: int
    severity: float | None


def parse_severity(values: list[str] | None, conditions: list[str]) -> dict[str, float]:
    """``--severity`` is one number for all conditions or ``cond=value`` pairs."""
    severity = {c: DEFAULT_SEVERITY[c] for c in conditions}
    for value in values or []:
        name, sep, number = value.rpartition('=')
        names = [name] if sep else conditions
        for cond in names:
            if cond not in CONDITIONS:
                raise ValueError(f'--severity: unknown condition {cond!r} in {value!r}; valid '
                                 f'names are {", ".join(CONDITIONS)}')
        try:
            level = float(number)
        except ValueError:
            raise ValueError(f'--severity: {value!r} is not a number or cond=number') from None
        if not 0.0 < level <= 1.0:
            raise ValueError(f'--severity: values must be in (0, 1], got {value!r}')
        severity.update({c: level for c in names if c in severity})
    return severity


def source_tasks(split: str, count: int, key: int, seed: int, height: int,
                 width: int) -> list[Task]:
    """Cityscapes-style names: ``<city>_<seq:06d>_000019``, the cities taking turns."""
    cities = SOURCE_CITIES[split]
    tasks = []
    for i in range(count):
        city = cities[i % len(cities)]
        stem = f'{city}_{i // len(cities):06d}_000019'
        img = osp.join('leftImg8bit', split, city, f'{stem}_leftImg8bit.png')
        label = osp.join('gtFine', split, city, f'{stem}_gtFine_labelTrainIds.png')
        tasks.append(Task('source', split, i, img, label, (seed, key, i), height, width, None))
    return tasks


def target_tasks(cond: str, split: str, count: int, key: int, seed: int, height: int,
                 width: int, frames_per_sequence: int, severity: float) -> list[Task]:
    """ACDC-style names: ``GOPR<nnnn>/GOPR<nnnn>_frame_<nnnnnn>``, a sparse frame sampling."""
    tasks = []
    offset = 0 if split == 'train' else 50
    for i in range(count):
        seq = f'GOPR{SEQUENCE_BASE[cond] + offset + i // frames_per_sequence:04d}'
        stem = f'{seq}_frame_{(i % frames_per_sequence + 1) * 37:06d}'
        tasks.append(
            Task(cond, split, i, osp.join('rgb_anon', cond, split, seq, f'{stem}_rgb_anon.png'),
                 osp.join('gt', cond, split, seq, f'{stem}_gt_labelTrainIds.png'),
                 (seed, key, i), height, width, severity))
    return tasks


def _target_key(cond: str, split: str) -> int:
    """The seed key of a condition's split: each (domain, split) draws its own scenes."""
    return 2 + 2 * CONDITIONS.index(cond) + (split == 'val')


def calibration_tasks(conditions: Sequence[str],
                      count: int,
                      severity: float | None,
                      seed: int = 0,
                      height: int = 128,
                      width: int = 256,
                      frames_per_sequence: int = 10) -> list[Task]:
    """The conditions' val scenes (those of ``num_target_val``) at ``severity``, laid out as
    ACDC's val split; ``severity=None`` renders the very same scenes without the weather."""
    tasks = []
    for cond in conditions:
        for task in target_tasks(cond, 'val', count, _target_key(cond, 'val'), seed, height,
                                 width, frames_per_sequence, severity or 1.0):
            tasks.append(task if severity else dataclasses.replace(task, domain='source',
                                                                   severity=None))
    return tasks


def choose_severity(clean: Mapping[str, float], measured: Mapping[float, Mapping[str, float]],
                    targets: Mapping[str, float]) -> dict[str, dict]:
    """Per condition, the severity at which the source keeps the share of its clean score
    (``measured[severity][cond] / clean[cond]``) nearest ``targets[cond]``; a tie goes to the
    milder severity."""
    choice = {}
    for cond, target in targets.items():
        shares = {level: scores[cond] / clean[cond] for level, scores in measured.items()}
        best = min(shares, key=lambda level: (abs(shares[level] - target), level))
        choice[cond] = dict(severity=best, retained=round(shares[best], 4),
                            target=round(target, 4))
    return choice


def render_task(task: Task, out: str) -> np.ndarray:
    """Render and write one image and its label; return the label's class histogram."""
    rgb, label, depth = render_scene(np.random.default_rng(task.seed), task.height, task.width)
    if task.domain != 'source':
        weather_rng = np.random.default_rng(task.seed + (1, ))
        rgb = apply_condition(task.domain, rgb, depth, weather_rng, task.severity)
    for path, image in ((task.img_path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)),
                        (task.label_path, label)):
        full = osp.join(out, path)
        os.makedirs(osp.dirname(full), exist_ok=True)
        if not cv2.imwrite(full, image):
            raise OSError(f'could not write {full}')
    return np.bincount(label.ravel(), minlength=256)


def _render_star(job: tuple) -> tuple[str, np.ndarray]:
    task, out = job
    return task.domain, render_task(task, out)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def prepare_out(out: str, overwrite: bool) -> None:
    """Refuse to mix with an earlier run unless ``overwrite``, which removes its outputs."""
    existing = [name for name in GENERATED if osp.exists(osp.join(out, name))]
    if existing and not overwrite:
        raise FileExistsError(f'{out} already holds generated data ({", ".join(existing)}); '
                              'pass --overwrite to replace it or choose another --out')
    for name in existing:
        path = osp.join(out, name)
        shutil.rmtree(path) if osp.isdir(path) else os.remove(path)
    os.makedirs(out, exist_ok=True)


def run_tasks(tasks: list[Task], out: str, workers: int) -> dict[str, np.ndarray]:
    """Render every task (in a pool when ``workers > 1``), printing progress."""
    jobs = [(task, out) for task in tasks]
    histograms: dict[str, np.ndarray] = {}
    start, step = time.perf_counter(), max(len(jobs) // 10, 1)
    # 'spawn', not 'fork': a forked child inherits OpenCV's (or torch's) thread pool in a broken
    # state when the parent has used it, and hangs; fresh processes cost a second of imports.
    context = multiprocessing.get_context('spawn')
    pool = context.Pool(workers, _init_worker) if workers > 1 else None
    try:
        results = pool.imap(_render_star, jobs, chunksize=8) if pool else map(_render_star, jobs)
        for done, (domain, hist) in enumerate(results, 1):
            histograms[domain] = histograms.get(domain, 0) + hist
            if done % step == 0 or done == len(jobs):
                rate = done / max(time.perf_counter() - start, 1e-6)
                print(f'[{done:5d}/{len(jobs)}] {rate:6.1f} img/s', flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return histograms


def class_frequencies(hist: np.ndarray) -> dict[str, float]:
    """Pixel fraction of each class (and of ignore), over all pixels."""
    total = max(int(hist.sum()), 1)
    freq = {name: round(float(hist[i]) / total, 5) for i, name in enumerate(CLASS_NAMES)}
    freq['ignore'] = round(float(hist[255]) / total, 5)
    return freq


def write_synthetic_acdc(out: str,
                         seed: int = 0,
                         num_source_train: int = 500,
                         num_source_val: int = 100,
                         num_target: int = 50,
                         num_target_val: int = 0,
                         frames_per_sequence: int = 10,
                         conditions: Sequence[str] = CONDITIONS,
                         width: int = 256,
                         height: int = 128,
                         severity: Mapping[str, float] | None = None,
                         workers: int = 1,
                         overwrite: bool = False) -> dict:
    """Render the benchmark into ``out``, printing progress; return what ``meta.json`` records.

    Args:
        out (str): Output root.
        seed (int): Base seed of every image. Defaults to 0.
        num_source_train (int): Source images in the train split. Defaults to 500.
        num_source_val (int): Source images in the val split. Defaults to 100.
        num_target (int): Target images per condition in the train split (the stream).
            Defaults to 50.
        num_target_val (int): Target images per condition in the val split. Defaults to 0.
        frames_per_sequence (int): Target images per ``GOPRxxxx`` folder. Defaults to 10.
        conditions (Sequence[str]): The target conditions, some of :data:`CONDITIONS`.
            Defaults to all four.
        width (int): Image width. Defaults to 256.
        height (int): Image height. Defaults to 128.
        severity (Mapping[str, float], optional): Severity in (0, 1] per condition (see
            :func:`parse_severity`); a condition it lacks takes its :data:`DEFAULT_SEVERITY`.
            Defaults to None: all of them.
        workers (int): Processes; the output does not depend on it. Defaults to 1.
        overwrite (bool): Delete what an earlier run generated under ``out`` first; without
            it, such outputs raise ``FileExistsError``. Defaults to False.

    Returns:
        dict: The arguments, the image counts per domain and split, the seconds taken, the
        class frequencies per domain and the layouts.
    """
    severity = {c: (severity or {}).get(c, DEFAULT_SEVERITY[c]) for c in conditions}
    args = dict(out=out, seed=seed, num_source_train=num_source_train,
                num_source_val=num_source_val, num_target=num_target,
                num_target_val=num_target_val, frames_per_sequence=frames_per_sequence,
                conditions=conditions, width=width, height=height, severity=severity,
                workers=workers)
    prepare_out(out, overwrite)
    tasks = (source_tasks('train', num_source_train, 0, seed, height, width)
             + source_tasks('val', num_source_val, 1, seed, height, width))
    for cond in conditions:
        for split, count in (('train', num_target), ('val', num_target_val)):
            tasks += target_tasks(cond, split, count, _target_key(cond, split), seed, height,
                                  width, frames_per_sequence, severity[cond])
    print(f'Rendering {len(tasks)} images of {width}x{height} into {out} '
          f'with {workers} worker(s)', flush=True)
    start = time.perf_counter()
    histograms = run_tasks(tasks, out, workers)
    seconds = time.perf_counter() - start
    counts: dict[str, dict[str, int]] = {}
    for task in tasks:
        counts.setdefault(task.domain, {}).setdefault(task.split, 0)
        counts[task.domain][task.split] += 1
    meta = dict(
        args=args, counts=counts, seconds=round(seconds, 2),
        class_frequencies={d: class_frequencies(h) for d, h in histograms.items()},
        layout=dict(source=SOURCE_LAYOUT, target=TARGET_LAYOUT))
    with open(osp.join(out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    print(f'Done: {len(tasks)} images in {seconds:.1f} s ({len(tasks) / max(seconds, 1e-6):.1f} '
          f'img/s)')
    for domain, splits in counts.items():
        print(f'  {domain:7s} ' + ', '.join(f'{s}: {n}' for s, n in splits.items()))
    if 'source' in histograms:
        top = sorted(class_frequencies(histograms['source']).items(), key=lambda kv: -kv[1])
        print('  source class pixels: ' + ', '.join(f'{k} {100 * v:.1f}%' for k, v in top if v))
    print(f'  metadata: {osp.join(out, "meta.json")}')
    return meta
