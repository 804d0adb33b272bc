"""The -C version of a data set: its images under 15 corruptions x 5 severities.

:func:`write_corrupted_set` has two modes, each writing the layout that its loader in
:mod:`stag_seg.datasets.imagenet_c` reads::

    folder=ROOT          ROOT/<class>/<name>.{JPEG,jpg,png}  (an ImageNet-style folder tree)
        -> OUT/<corruption>/<severity>/<class>/<name>     ImageNet-C, ``ImageNetCDataset``

    npy=IMAGES.npy, labels=LABELS.npy     N x H x W x 3 uint8 RGB images, N labels
        -> OUT/<corruption>.npy   5N x H x W x 3, severities 1 to 5 one after another
           OUT/labels.npy         the N labels 5 times        CIFAR-10-C, ``CIFARCDataset``

The corruptions are :func:`~stag_seg.datasets.generators.corruptions.corrupt`; their
parameters follow the image size (``preset='auto'``: the CIFAR table up to a 64 px short side,
else the ImageNet one, scaled to the image). ``OUT/corruption_meta.json`` records the table, the
preset, the frost source and the seed. Images keep their name and format: PNG stays lossless,
JPEG is written at ``jpeg_quality`` without chroma subsampling.

Every image has its own random generator (:func:`image_rng`), seeded from ``seed``, the
corruption, the severity and the image (its index in array mode, :func:`path_key` of its path
under ROOT in folder mode), so the output does not depend on ``workers`` nor on which
corruptions and severities a run makes: later runs can add corruptions to the same ``out``.
``tools/make_corrupted.py`` is its command line; the errors name its options.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import os.path as osp
import shutil
import time
import zlib
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from ..domain_names import CORRUPTIONS, IMAGE_SUFFIXES
from .corruptions import CORRUPTION_PRESETS, CORRUPTION_TABLES, corrupt, frost_source

__all__ = ['SEVERITIES', 'check_options', 'image_rng', 'path_key', 'write_corrupted_set']

#: The severities of the benchmarks.
SEVERITIES = (1, 2, 3, 4, 5)
CHUNK_BYTES = 64 * 2 ** 20  # array mode: corrupted pixels one job returns at most


def check_options(folder: str | None = None,
                  npy: str | None = None,
                  labels: str | None = None,
                  corruptions: Sequence[str] = CORRUPTIONS,
                  severities: Sequence[int] = SEVERITIES,
                  seed: int = 0,
                  preset: str = 'auto',
                  table: str = 'published',
                  workers: int = 1,
                  jpeg_quality: int = 95) -> tuple[list[str], list[int]]:
    """Check the options of :func:`write_corrupted_set` before any work.

    Returns:
        tuple[list[str], list[int]]: The corruptions and the severities in the canonical
        order (:data:`~stag_seg.datasets.domain_names.CORRUPTIONS`, ascending), without repeats.

    Raises:
        ValueError: naming the first bad option.
    """
    if (folder is None) == (npy is None):
        raise ValueError('give one source of images: --folder or --npy')
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f'--corruptions: unknown {unknown[0]!r}; valid names are '
                         f'{", ".join(CORRUPTIONS)}')
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f'--severities must be in 1..5, got {bad[0]!r}')
    if preset != 'auto' and preset not in CORRUPTION_PRESETS:
        raise ValueError(f"--preset must be 'auto', 'imagenet' or 'cifar', got {preset!r}")
    if table not in CORRUPTION_TABLES:
        raise ValueError(f'--table must be one of {", ".join(CORRUPTION_TABLES)}, got {table!r}')
    if npy and not labels:
        raise ValueError('--npy needs --labels')
    if folder and labels:
        raise ValueError('--labels belongs to --npy; folder mode takes the class from the '
                         'folder')
    if npy and sorted(set(severities)) != list(SEVERITIES):
        raise ValueError('--severities: the CIFAR-C layout holds all 5 severities in one file; '
                         f'array mode makes 1 2 3 4 5, got {" ".join(map(str, severities))}')
    if seed < 0:
        raise ValueError(f'--seed must be >= 0, got {seed}')
    if workers < 1:
        raise ValueError(f'--workers must be >= 1, got {workers}')
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f'--jpeg-quality must be in 1..100, got {jpeg_quality}')
    return [c for c in CORRUPTIONS if c in corruptions], sorted(set(severities))


def image_rng(seed: int, corruption: str, severity: int, key: int) -> np.random.Generator:
    """The generator of one output image: a function of these four numbers only."""
    return np.random.default_rng([seed, CORRUPTIONS.index(corruption), severity, key])


def path_key(relpath: str) -> int:
    """Folder mode's image key: a checksum of its path under ROOT ('/'-separated)."""
    return zlib.crc32(relpath.replace(os.sep, '/').encode())


# ------------------------------------------------------------------------------------------
# folder mode
# ------------------------------------------------------------------------------------------


def list_folder(root: str) -> list[str]:
    """``<class>/<name>`` of every image under ROOT, sorted."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'--folder: {root} is not a directory')
    classes = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
    if not classes:
        raise ValueError(f'--folder: {root} holds no class folders (expected '
                         'ROOT/<class>/<image>)')
    images = [osp.join(c, name) for c in classes for name in sorted(os.listdir(osp.join(root, c)))
              if name.lower().endswith(IMAGE_SUFFIXES)]
    if not images:
        raise ValueError(f'--folder: the class folders of {root} hold no images '
                         f'({", ".join(IMAGE_SUFFIXES)})')
    return images


def corrupt_file(job: tuple) -> int:
    """Read one image, write its corrupted versions; return how many."""
    root, out, relpath, pairs, seed, preset, quality, table, frost = job
    with Image.open(osp.join(root, relpath)) as img:
        image = np.asarray(img.convert('RGB'))
    jpeg = relpath.lower().endswith(('.jpg', '.jpeg'))
    for corruption, severity in pairs:
        try:
            result = corrupt(image, corruption, severity,
                             image_rng(seed, corruption, severity, path_key(relpath)), preset,
                             table=table, frost=frost)
        except ValueError as exc:
            raise ValueError(f'{osp.join(root, relpath)}: {exc}') from None
        path = osp.join(out, corruption, str(severity), relpath)
        os.makedirs(osp.dirname(path), exist_ok=True)
        if jpeg:
            Image.fromarray(result).save(path, format='JPEG', quality=quality, subsampling=0)
        else:
            Image.fromarray(result).save(path, format='PNG')
    return len(pairs)


def _write_folder(folder: str, out: str, pairs: list[tuple[str, int]], seed: int, preset: str,
                  table: str, frost: str, workers: int, jpeg_quality: int,
                  overwrite: bool) -> tuple[int, int]:
    images = list_folder(folder)
    existing = [osp.join(out, c, str(s)) for c, s in pairs if osp.exists(osp.join(out, c, str(s)))]
    if existing and not overwrite:
        raise FileExistsError(f'{existing[0]} exists ({len(existing)} of the requested '
                              'corruption/severity folders do); pass --overwrite to replace '
                              'them or choose another --out')
    for path in existing:
        shutil.rmtree(path)
    jobs = [(folder, out, rel, pairs, seed, preset, jpeg_quality, table, frost) for rel in images]
    print(f'Corrupting {len(images)} images of {folder} x {len(pairs)} '
          f'corruption/severity pairs into {out} with {workers} worker(s)', flush=True)
    written = sum(_run_jobs(corrupt_file, jobs, workers, len(images) * len(pairs)))
    return len(images), written


# ------------------------------------------------------------------------------------------
# array mode
# ------------------------------------------------------------------------------------------


def load_arrays(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The images (memory-mapped) and labels of array mode, checked."""
    for flag, path in (('--npy', images_path), ('--labels', labels_path)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{flag}: {path} is not a file')
    images = np.load(images_path, mmap_mode='r')
    labels = np.load(labels_path)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f'--npy: {images_path} must hold N x H x W x 3 uint8 RGB images, got '
                         f'shape {images.shape} and dtype {images.dtype}')
    if len(images) == 0 or min(images.shape[1:3]) < 8:
        raise ValueError(f'--npy: {images_path} must hold at least one image of at least 8x8 '
                         f'pixels, got shape {images.shape}')
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f'--labels: {labels_path} holds {labels.shape} labels for '
                         f'{len(images)} images in {images_path}; expected ({len(images)},)')
    return images, labels


def corrupt_chunk(job: tuple) -> tuple[int, dict]:
    """Corrupt images ``start:stop`` of the array; return ``start`` and the results."""
    images_path, start, stop, pairs, seed, preset, table, frost = job
    images = np.load(images_path, mmap_mode='r')
    results = {}
    for corruption, severity in pairs:
        results[corruption, severity] = np.stack([
            corrupt(np.asarray(images[i]), corruption, severity,
                    image_rng(seed, corruption, severity, i), preset, table=table, frost=frost)
            for i in range(start, stop)])
    return start, results


def _write_arrays(npy: str, labels_path: str, out: str, corruptions: list[str],
                  pairs: list[tuple[str, int]], seed: int, preset: str, table: str, frost: str,
                  workers: int, overwrite: bool) -> tuple[int, int]:
    images, labels = load_arrays(npy, labels_path)
    num, shape = len(images), images.shape[1:]
    outputs = {c: osp.join(out, f'{c}.npy') for c in corruptions}
    existing = [p for p in outputs.values() if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f'{existing[0]} exists ({len(existing)} of the requested files '
                              'do); pass --overwrite to replace them or choose another --out')
    labels_out = osp.join(out, 'labels.npy')
    tiled = np.tile(labels, len(SEVERITIES))
    if (osp.exists(labels_out) and not overwrite
            and not np.array_equal(np.load(labels_out), tiled)):
        raise FileExistsError(f'{labels_out} holds other labels; pass --overwrite to replace '
                              'it or choose another --out')
    os.makedirs(out, exist_ok=True)
    np.save(labels_out, tiled)
    files = {c: np.lib.format.open_memmap(path + '.partial', mode='w+', dtype=np.uint8,
                                          shape=(len(SEVERITIES) * num, ) + shape)
             for c, path in outputs.items()}
    # about 8 jobs per worker for an even load, each returning at most CHUNK_BYTES
    chunk = max(1, min(-(-num // (8 * workers)),
                       CHUNK_BYTES // (len(pairs) * int(np.prod(shape)))))
    jobs = [(npy, start, min(start + chunk, num), pairs, seed, preset, table, frost)
            for start in range(0, num, chunk)]
    print(f'Corrupting {num} images of {npy} ({shape[0]}x{shape[1]}) x {len(pairs)} '
          f'corruption/severity pairs into {out} with {workers} worker(s)', flush=True)
    written = 0
    try:
        for start, results in _run_jobs(corrupt_chunk, jobs, workers, num * len(pairs),
                                        per_result=lambda r: sum(map(len, r[1].values()))):
            for (corruption, severity), block in results.items():
                offset = (severity - 1) * num + start
                files[corruption][offset:offset + len(block)] = block
                written += len(block)
        for array in files.values():
            array.flush()
    finally:
        files.clear()  # closes the memory maps
        for path in outputs.values():
            if written == num * len(pairs):
                os.replace(path + '.partial', path)
            elif osp.exists(path + '.partial'):
                os.remove(path + '.partial')
    return num, written


# ------------------------------------------------------------------------------------------


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _run_jobs(function: Callable, jobs: list, workers: int, total: int,
              per_result: Callable | None = None) -> Iterator:
    """Yield ``function(job)`` for every job (in a pool when ``workers > 1``), printing
    progress in corrupted images (``per_result(result)`` of them per job, else the result)."""
    count = per_result or (lambda result: result)
    start, done, step = time.perf_counter(), 0, max(total // 10, 1)
    # 'spawn', not 'fork': a forked child inherits OpenCV's thread pool in a broken state
    # when the parent has used it, and hangs
    pool = (multiprocessing.get_context('spawn').Pool(workers, _init_worker)
            if workers > 1 else None)
    try:
        results = pool.imap_unordered(function, jobs) if pool else map(function, jobs)
        for result in results:
            before, done = done, done + count(result)
            if done // step != before // step or done == total:
                rate = done / max(time.perf_counter() - start, 1e-6)
                print(f'[{done:7d}/{total}] {rate:7.1f} img/s', flush=True)
            yield result
    finally:
        if pool is not None:
            pool.close()
            pool.join()


def _merged_meta(out: str, table: str, preset: str, frost: str, seed: int,
                 corruptions: list[str], severities: list[int], overwrite: bool) -> dict:
    """What ``OUT/corruption_meta.json`` will record: how the corrupted images were made,
    merged with what an earlier run into the same ``out`` recorded.

    Raises:
        ValueError: the earlier run used another table, preset, frost or seed (unless
            ``overwrite``): one folder would hold two benchmarks.
    """
    path = osp.join(out, 'corruption_meta.json')
    meta = dict(table=table, preset=preset, frost=frost, seed=seed)
    if osp.isfile(path):
        with open(path) as f:
            old = json.load(f)
        clash = {k: (old[k], v) for k, v in meta.items() if k in old and old[k] != v}
        if clash and not overwrite:
            raise ValueError(f'{path} records other settings for the images already there: '
                             f'{clash} (earlier, now); use another --out')
        meta = dict(old, **meta)
    meta['corruptions'] = sorted(set(meta.get('corruptions', [])) | set(corruptions))
    meta['severities'] = sorted(set(meta.get('severities', [])) | set(severities))
    return meta


def write_corrupted_set(out: str,
                        folder: str | None = None,
                        npy: str | None = None,
                        labels: str | None = None,
                        corruptions: Sequence[str] = CORRUPTIONS,
                        severities: Sequence[int] = SEVERITIES,
                        seed: int = 0,
                        preset: str = 'auto',
                        table: str = 'published',
                        frost: str = 'auto',
                        workers: int = 1,
                        jpeg_quality: int = 95,
                        overwrite: bool = False) -> dict:
    """Write the -C version of an image folder or array under ``out``, printing progress.

    Args:
        out (str): Output root.
        folder (str, optional): ``ROOT`` of class folders of images (folder mode).
        npy (str, optional): ``.npy`` of N x H x W x 3 uint8 RGB images (array mode). Exactly
            one of ``folder`` and ``npy`` is given.
        labels (str, optional): ``.npy`` of the N labels; array mode only, where it is needed.
        corruptions (Sequence[str]): Some of :data:`~stag_seg.datasets.domain_names.CORRUPTIONS`.
            Defaults to all 15.
        severities (Sequence[int]): Some of 1..5; array mode makes all five. Defaults to all.
        seed (int): Base seed of every image, >= 0. Defaults to 0.
        preset (str): Parameter table by image size (``'auto'``), ``'imagenet'`` or
            ``'cifar'``. Defaults to ``'auto'``.
        table (str): ``'published'`` (the reference scripts' parameters) or ``'monotone'``
            (seven entries changed so that distortion grows with severity). Defaults to
            ``'published'``.
        frost (str): ``'auto'`` (the reference's photographs when ``imagecorruptions-imaug``
            is installed, else a procedural texture), ``'photos'`` or ``'procedural'``.
            Defaults to ``'auto'``.
        workers (int): Processes; the output does not depend on it. Defaults to 1.
        jpeg_quality (int): Quality of the JPEG files written in folder mode, 1..100.
            Defaults to 95.
        overwrite (bool): Replace outputs an earlier run wrote for these corruptions and
            severities; without it, they raise ``FileExistsError``. Defaults to False.

    Returns:
        dict: ``inputs``, ``written`` (corrupted images), ``seconds``, the ``corruptions`` and
        ``severities`` made, the ``table`` and the ``frost`` source used.

    Raises:
        ValueError: a bad option (:func:`check_options`), a bad input, or ``out`` holding
            images made with another table, preset, frost source or seed.
        FileNotFoundError: a missing input.
        FileExistsError: outputs of an earlier run, unless ``overwrite``.
        ModuleNotFoundError: ``frost='photos'`` without ``imagecorruptions-imaug``.
    """
    corruptions, severities = check_options(folder, npy, labels, corruptions, severities, seed,
                                            preset, table, workers, jpeg_quality)
    pairs = [(c, s) for c in corruptions for s in severities]
    source = frost_source(frost)  # fails before any work when the photos are missing
    meta = _merged_meta(out, table, preset, source, seed, corruptions, severities, overwrite)
    start = time.perf_counter()
    if folder:
        inputs, written = _write_folder(folder, out, pairs, seed, preset, table, frost, workers,
                                        jpeg_quality, overwrite)
    else:
        inputs, written = _write_arrays(npy, labels, out, corruptions, pairs, seed, preset,
                                        table, frost, workers, overwrite)
    seconds = time.perf_counter() - start
    with open(osp.join(out, 'corruption_meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    print(f'Done: {written} corrupted images ({inputs} inputs x {len(corruptions)} '
          f'corruptions x {len(severities)} severities) in {seconds:.1f} s '
          f'({written / max(seconds, 1e-6):.1f} img/s) under {out}')
    return dict(inputs=inputs, written=written, seconds=round(seconds, 2),
                corruptions=corruptions, severities=severities, table=table, frost=source)
