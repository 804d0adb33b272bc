"""Build the -C version of a data set: its images under 15 corruptions x 5 severities.

Two modes, each writing the layout that its loader in ``stag_seg.datasets.imagenet_c`` reads::

    --folder ROOT        ROOT/<class>/<name>.{JPEG,jpg,png}  (an ImageNet-style folder tree)
        -> OUT/<corruption>/<severity>/<class>/<name>     ImageNet-C, ``ImageNetCDataset``

    --npy IMAGES.npy --labels LABELS.npy     N x H x W x 3 uint8 RGB images, N labels
        -> OUT/<corruption>.npy   5N x H x W x 3, severities 1 to 5 one after another
           OUT/labels.npy         the N labels 5 times        CIFAR-10-C, ``CIFARCDataset``

The corruptions are ``stag_seg.datasets.generators.corrupt``; their parameters follow the image
size (``--preset auto``: the CIFAR table up to a 64 px short side, else the ImageNet one, scaled
to the image). ``--table published`` (default) is the reference scripts' parameter table;
``--table monotone`` changes seven entries (see ``stag_seg.datasets.generators.corruptions``).
Frost blends the reference's photographs when ``imagecorruptions-imaug`` is installed
(``--frost auto``), else a procedural texture. ``OUT/corruption_meta.json`` records the table, the preset, the
frost source and the seed. ImageNet-C corrupted the 224x224 centre crops of the validation images (resized
to 256 first): crop before running this if the benchmark should match. Images keep their name
and format: PNG stays lossless, JPEG is written at ``--jpeg-quality`` without chroma
subsampling (ImageNet-C itself was saved at quality 85). ``CIFARCDataset`` reads 32x32 images.

Every image has its own random generator, seeded from ``--seed``, the corruption, the severity
and the image (its index in array mode, its path under ROOT in folder mode), so the output does
not depend on ``--workers`` nor on which corruptions and severities a run makes: later runs can
add corruptions to the same ``--out``.

Examples::

    python tools/make_corrupted.py --folder data/imagenet/val_224 --out data/imagenet_c_own \\
        --corruptions gaussian_noise fog --severities 5 --workers 2
    python tools/make_corrupted.py --npy data/cifar10/test_images.npy \\
        --labels data/cifar10/test_labels.npy --out data/cifar10_c_own --workers 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import os.path as osp
import shutil
import sys
import time
import zlib

import cv2
import numpy as np
from PIL import Image

from stag_seg.datasets.benchmarks import CORRUPTIONS, IMAGE_SUFFIXES
from stag_seg.datasets.generators import CORRUPTION_TABLES, FROST_SOURCES, corrupt, frost_source

SEVERITIES = (1, 2, 3, 4, 5)
CHUNK_BYTES = 64 * 2 ** 20  # array mode: corrupted pixels one job returns at most


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Corrupt a data set with the ImageNet-C corruptions (ImageNet-C or CIFAR-C '
        'layout).')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--folder', metavar='ROOT', help='class folders of images')
    source.add_argument('--npy', metavar='IMAGES.npy', help='N x H x W x 3 uint8 RGB images')
    parser.add_argument('--labels', metavar='LABELS.npy', help='N labels (with --npy)')
    parser.add_argument('--out', required=True, help='output root')
    parser.add_argument('--corruptions', nargs='+', default=list(CORRUPTIONS),
                        choices=CORRUPTIONS, metavar='NAME',
                        help=f'default: all 15 ({", ".join(CORRUPTIONS)})')
    parser.add_argument('--severities', nargs='+', type=int, default=list(SEVERITIES),
                        choices=SEVERITIES, metavar='S', help='in 1..5, default: all')
    parser.add_argument('--seed', type=int, default=0, help='base seed of every image')
    parser.add_argument('--preset', default='auto', choices=('auto', 'imagenet', 'cifar'),
                        help='parameter table (default: by image size)')
    parser.add_argument('--table', default='published', choices=CORRUPTION_TABLES,
                        help="parameter table: the reference scripts' (published, default) or "
                        'with seven entries changed so that distortion grows with severity '
                        '(monotone)')
    parser.add_argument('--frost', default='auto', choices=FROST_SOURCES,
                        help='frost: the reference photographs of imagecorruptions-imaug when '
                        'installed, else a procedural texture (auto, default), or either one')
    parser.add_argument('--workers', type=int, default=1, help='processes (default: 1)')
    parser.add_argument('--jpeg-quality', type=int, default=95,
                        help='quality of the JPEG files written in folder mode (default: 95)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace outputs an earlier run wrote for these corruptions and '
                        'severities')
    args = parser.parse_args(argv)
    if args.npy and not args.labels:
        parser.error('--npy needs --labels')
    if args.folder and args.labels:
        parser.error('--labels belongs to --npy; folder mode takes the class from the folder')
    if args.npy and sorted(set(args.severities)) != list(SEVERITIES):
        parser.error('--severities: the CIFAR-C layout holds all 5 severities in one file; '
                     f'array mode makes 1 2 3 4 5, got {" ".join(map(str, args.severities))}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    if args.workers < 1:
        parser.error(f'--workers must be >= 1, got {args.workers}')
    if not 1 <= args.jpeg_quality <= 100:
        parser.error(f'--jpeg-quality must be in 1..100, got {args.jpeg_quality}')
    # keep the canonical order whatever the command line's, without repeats
    args.corruptions = [c for c in CORRUPTIONS if c in args.corruptions]
    args.severities = sorted(set(args.severities))
    return args


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


def run_folder(args: argparse.Namespace, pairs: list[tuple[str, int]]) -> tuple[int, int]:
    images = list_folder(args.folder)
    existing = [osp.join(args.out, c, str(s)) for c, s in pairs
                if osp.exists(osp.join(args.out, c, str(s)))]
    if existing and not args.overwrite:
        raise FileExistsError(f'{existing[0]} exists ({len(existing)} of the requested '
                              'corruption/severity folders do); pass --overwrite to replace '
                              'them or choose another --out')
    for path in existing:
        shutil.rmtree(path)
    jobs = [(args.folder, args.out, rel, pairs, args.seed, args.preset, args.jpeg_quality,
             args.table, args.frost)
            for rel in images]
    print(f'Corrupting {len(images)} images of {args.folder} x {len(pairs)} '
          f'corruption/severity pairs into {args.out} with {args.workers} worker(s)', flush=True)
    written = sum(run_jobs(corrupt_file, jobs, args.workers, len(images) * len(pairs)))
    return len(images), written


# ------------------------------------------------------------------------------------------
# array mode
# ------------------------------------------------------------------------------------------


def load_arrays(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
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


def run_arrays(args: argparse.Namespace, pairs: list[tuple[str, int]]) -> tuple[int, int]:
    images, labels = load_arrays(args.npy, args.labels)
    num, shape = len(images), images.shape[1:]
    outputs = {c: osp.join(args.out, f'{c}.npy') for c in args.corruptions}
    existing = [p for p in outputs.values() if osp.exists(p)]
    if existing and not args.overwrite:
        raise FileExistsError(f'{existing[0]} exists ({len(existing)} of the requested files '
                              'do); pass --overwrite to replace them or choose another --out')
    labels_out = osp.join(args.out, 'labels.npy')
    tiled = np.tile(labels, len(SEVERITIES))
    if (osp.exists(labels_out) and not args.overwrite
            and not np.array_equal(np.load(labels_out), tiled)):
        raise FileExistsError(f'{labels_out} holds other labels; pass --overwrite to replace '
                              'it or choose another --out')
    os.makedirs(args.out, exist_ok=True)
    np.save(labels_out, tiled)
    files = {c: np.lib.format.open_memmap(path + '.partial', mode='w+', dtype=np.uint8,
                                          shape=(len(SEVERITIES) * num, ) + shape)
             for c, path in outputs.items()}
    # about 8 jobs per worker for an even load, each returning at most CHUNK_BYTES
    chunk = max(1, min(-(-num // (8 * args.workers)),
                       CHUNK_BYTES // (len(pairs) * int(np.prod(shape)))))
    jobs = [(args.npy, start, min(start + chunk, num), pairs, args.seed, args.preset,
             args.table, args.frost)
            for start in range(0, num, chunk)]
    print(f'Corrupting {num} images of {args.npy} ({shape[0]}x{shape[1]}) x {len(pairs)} '
          f'corruption/severity pairs into {args.out} with {args.workers} worker(s)', flush=True)
    written = 0
    try:
        for start, results in run_jobs(corrupt_chunk, jobs, args.workers, num * len(pairs),
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


def run_jobs(function, jobs: list, workers: int, total: int, per_result=None):
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


def merged_meta(args: argparse.Namespace, frost: str) -> dict:
    """What ``OUT/corruption_meta.json`` will record: how the corrupted images were made,
    merged with what an earlier run into the same ``--out`` recorded.

    Raises:
        ValueError: the earlier run used another table, preset, frost or seed (unless
            ``--overwrite``): one folder would hold two benchmarks.
    """
    path = osp.join(args.out, 'corruption_meta.json')
    meta = dict(table=args.table, preset=args.preset, frost=frost, seed=args.seed)
    if osp.isfile(path):
        with open(path) as f:
            old = json.load(f)
        clash = {k: (old[k], v) for k, v in meta.items() if k in old and old[k] != v}
        if clash and not args.overwrite:
            raise ValueError(f'{path} records other settings for the images already there: '
                             f'{clash} (earlier, now); use another --out')
        meta = dict(old, **meta)
    meta['corruptions'] = sorted(set(meta.get('corruptions', [])) | set(args.corruptions))
    meta['severities'] = sorted(set(meta.get('severities', [])) | set(args.severities))
    return meta


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    pairs = [(c, s) for c in args.corruptions for s in args.severities]
    frost = frost_source(args.frost)  # fails before any work when the photos are missing
    meta = merged_meta(args, frost)
    start = time.perf_counter()
    inputs, written = (run_folder if args.folder else run_arrays)(args, pairs)
    seconds = time.perf_counter() - start
    with open(osp.join(args.out, 'corruption_meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    print(f'Done: {written} corrupted images ({inputs} inputs x {len(args.corruptions)} '
          f'corruptions x {len(args.severities)} severities) in {seconds:.1f} s '
          f'({written / max(seconds, 1e-6):.1f} img/s) under {args.out}')
    return dict(inputs=inputs, written=written, seconds=round(seconds, 2),
                corruptions=args.corruptions, severities=args.severities, table=args.table,
                frost=frost)


if __name__ == '__main__':
    try:
        main()
    except (OSError, ValueError, ModuleNotFoundError) as exc:  # bad files, missing frost photos
        sys.exit(f'error: {exc}')
