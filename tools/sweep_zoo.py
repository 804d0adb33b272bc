"""Every stock MMSeg and mmpretrain model under ``STAGHook``: does the toolkit adapt it, refuse it
with a reason, or can it not be built here?

One config per algorithm folder of each installed zoo (the rules are :func:`mmseg_configs` and
:func:`mmpretrain_configs`), built with random weights as a user's config would be, with only
``custom_imports`` and a ``STAGHook`` (Tent with STAG's default) added, and run through the stock
``Runner.test()`` on a few generated images at batch size 1 (and 4 for classifiers). Each run ends
in one outcome:

- ``adapted``: the test ran, the adapted parameters moved and STAG's statistics are in the steps';
- ``refused``: the toolkit raised :class:`~stag_seg.structures.NotAdaptableError`, which names
  the model, the part it lacks and what adapting it would need;
- ``not buildable``: the model cannot be built or run here (a package or compiled op is
  missing); where the toolkit knows it would refuse the model anyway, the reason is given too;
- ``crash``: anything else. There must be none.

Writes the records as JSON and the table of docs/en/supported_models.md::

    python tools/sweep_zoo.py --out results/model_zoo/supported_models.json \
        --table docs/en/supported_models.md
"""
from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import itertools
import json
import os
import os.path as osp
import sys
import tempfile
import time
import traceback

import numpy as np

OUTCOMES = ('adapted', 'refused', 'not buildable', 'crash')
#: The input of segmentors, (width, height), unless the stock model itself fails at it.
SEG_INPUT = (256, 128)
#: Decode heads that exist only with another package installed (MMSeg substitutes a plain
#: module for them, which then fails with an unrelated error).
NEEDS_PACKAGE = {'Mask2FormerHead': 'mmdet', 'MaskFormerHead': 'mmdet'}
#: What the hook adds to every config: the method and its optimizer.
HOOK = dict(type='STAGHook', method=dict(type='Tent'),
            optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-3)))
_RUN_IDS = itertools.count()


# ---------------------------------------------------------------------------- which configs
def zoo_root(package: str) -> str:
    """The folder of the configs an installed OpenMMLab package ships (``<pkg>/.mim/configs``)."""
    module = importlib.import_module(package)
    return osp.join(osp.dirname(module.__file__), '.mim', 'configs')


def mmseg_configs(root: str | None = None) -> list[tuple[str, str]]:
    """``(folder, config path)``, one per algorithm folder of MMSeg's configs: the first
    Cityscapes config in name order, else the first config (``_base_`` and ``dsdl``, which holds
    data sets only, are not algorithms)."""
    root = root or zoo_root('mmseg')
    picked = []
    for folder in sorted(os.listdir(root)):
        path = osp.join(root, folder)
        if folder.startswith('_') or folder == 'dsdl' or not osp.isdir(path):
            continue
        files = sorted(f for f in os.listdir(path) if f.endswith('.py'))
        cityscapes = [f for f in files if 'cityscapes' in f]
        if files:
            picked.append((folder, osp.join(path, (cityscapes or files)[0])))
    return picked


def _preference(folder: str, relpath: str) -> tuple:
    """Order of the configs of one mmpretrain folder: top-level files before those in
    sub-folders (``benchmarks/``; ``deploy/`` last: fused models), ImageNet-1k first, by name."""
    parts = relpath.split(os.sep)
    return ('deploy' in parts[:-1], len(parts), 'in1k' not in parts[-1], relpath)


def mmpretrain_configs(folders: list[str] | None = None, root: str | None = None
                       ) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``(folder, config path)``, one per folder of mmpretrain's configs (all, or ``folders``)
    that has an image classifier (a model whose type is ``ImageClassifier`` or a subclass, with
    a head: headless ones are feature extractors): the first such config in
    :func:`_preference` order. Also returns the other folders with what
    their first config builds instead."""
    from mmengine.config import Config
    from mmpretrain.models import ImageClassifier
    from mmpretrain.registry import MODELS
    root = root or zoo_root('mmpretrain')
    picked, others = [], {}
    for folder in sorted(os.listdir(root)):
        path = osp.join(root, folder)
        if folder.startswith('_') or not osp.isdir(path):
            continue
        if folders is not None and folder not in folders:
            continue
        files = sorted((osp.relpath(osp.join(d, f), path) for d, _, fs in os.walk(path)
                        for f in fs if f.endswith('.py')), key=lambda r: _preference(folder, r))
        first_type = None
        for rel in files:
            try:
                model = Config.fromfile(osp.join(path, rel)).get('model')
            except Exception:  # configs of optional packages may not even load; skip them
                continue
            if not model:
                continue
            cls = MODELS.get(model.get('type'))
            first_type = first_type or model.get('type')
            if (isinstance(cls, type) and issubclass(cls, ImageClassifier)
                    and model.get('head')):
                picked.append((folder, osp.join(path, rel)))
                break
        else:
            others[folder] = first_type or 'no model'
    return picked, others


# ---------------------------------------------------------------------------- data
def write_cityscapes(root: str, num: int = 2, size: tuple[int, int] = (128, 256)) -> str:
    """``num`` random images and label maps in the layout of MMSeg's ``CityscapesDataset``."""
    from stag_seg.selfcheck import write_cityscapes as write
    write(root, num=num, size=size)
    return root


def write_image_folder(root: str, num_classes: int = 2, per_class: int = 2) -> str:
    """A folder per class of random 64x64 images, for mmpretrain's ``CustomDataset``."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in range(num_classes):
        os.makedirs(osp.join(root, f'class_{c}'), exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(image).save(osp.join(root, f'class_{c}', f'{i}.png'))
    return root


# ---------------------------------------------------------------------------- one run
def without_pretrained(cfg):
    """``cfg`` with every pretrained-weights reference removed (nothing can be downloaded)."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'Pretrained':
            return None
        out = {}
        for key, value in cfg.items():
            if key == 'pretrained' and isinstance(value, str):
                value = None
            elif key == 'pretrained' and value is True:
                value = False
            out[key] = without_pretrained(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(without_pretrained(v) for v in cfg)
    return cfg


def _types(cfg) -> list[str]:
    """Every ``type`` named in a model config, outermost first."""
    found = []
    if isinstance(cfg, dict):
        if isinstance(cfg.get('type'), str):
            found.append(cfg['type'])
        for value in cfg.values():
            found += _types(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found += _types(value)
    return found


def known_refusal(model_cfg: dict) -> str | None:
    """What the toolkit would refuse in a model it has not built: the first type in the config
    with a known reason (:data:`stag_seg.models.NOT_PER_PIXEL_LINEAR`)."""
    from stag_seg.models import refusal_reason
    for name in _types(model_cfg):
        reason = refusal_reason(name)
        if reason is not None:
            return f'{name} {reason}'
    return None


def missing_package(model_cfg: dict) -> str | None:
    """A package the config's types need and this environment lacks (:data:`NEEDS_PACKAGE`)."""
    for name in _types(model_cfg):
        package = NEEDS_PACKAGE.get(name)
        if package and importlib.util.find_spec(package) is None:
            return f'{name} needs {package}, which is not installed'
    return None


def _base_cfg(path: str, work_dir: str, scope: str):
    """The stock config with only what a user adds: the toolkit, the hook, a place to write (and
    the default scope, which model-only configs leave out)."""
    from mmengine.config import Config, ConfigDict
    cfg = Config.fromfile(path)
    cfg.setdefault('default_scope', scope)
    cfg.model = ConfigDict(without_pretrained(cfg.model.to_dict()))
    cfg.custom_imports = dict(imports=['stag_seg'], allow_failed_imports=False)
    cfg.custom_hooks = [copy.deepcopy(HOOK)]
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
                'val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg.pop(key, None)
    cfg.work_dir = work_dir
    cfg.log_level = 'ERROR'
    cfg.load_from = None
    cfg.resume = False
    cfg.randomness = dict(seed=0)
    cfg.experiment_name = f'zoo_{next(_RUN_IDS)}'
    return cfg


def seg_cfg(path: str, data_root: str, work_dir: str, size: tuple[int, int] = SEG_INPUT):
    """A stock MMSeg config on the generated Cityscapes images resized to ``size`` (w, h)."""
    cfg = _base_cfg(path, work_dir, 'mmseg')
    cfg.test_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CityscapesDataset', data_root=data_root,
                     data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='Resize', scale=size, keep_ratio=False),
                               dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))
    cfg.test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    cfg.test_cfg = dict(type='TestLoop')
    return cfg


def cls_cfg(path: str, data_root: str, work_dir: str, batch_size: int):
    """A stock mmpretrain config on the generated image folder, through its own test
    pipeline (its resize and crop), at ``batch_size``."""
    cfg = _base_cfg(path, work_dir, 'mmpretrain')
    if cfg.get('test_dataloader'):
        pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    else:  # a model-only config (DINOv2's): ImageNet's usual evaluation transform
        pipeline = [dict(type='LoadImageFromFile'), dict(type='ResizeEdge', scale=256,
                                                         edge='short'),
                    dict(type='CenterCrop', crop_size=224), dict(type='PackInputs')]
    cfg.test_dataloader = dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CustomDataset', data_root=data_root, pipeline=pipeline))
    cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.test_cfg = dict(type='TestLoop')
    return cfg


def _crop_size(path: str) -> tuple[int, int] | None:
    """The config's crop size as (w, h), from ``crop_size`` (h, w) when it defines one."""
    from mmengine.config import Config
    crop = Config.fromfile(path).get('crop_size')
    return (int(crop[1]), int(crop[0])) if crop else None


def plain_model_runs(path: str, size: tuple[int, int]) -> bool:
    """Whether the stock segmentor, without the toolkit, predicts an image of ``size`` (w, h)."""
    import torch
    from mmengine.config import Config, ConfigDict
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(ConfigDict(without_pretrained(cfg.model.to_dict())))
    model.eval()
    width, height = size
    meta = dict(img_shape=(height, width), ori_shape=(height, width),
                pad_shape=(height, width), padding_size=[0, 0, 0, 0])
    try:
        with torch.no_grad():
            model.inference(torch.zeros(1, 3, height, width), [meta])
        return True
    except Exception:
        return False


class _Recorder:
    """A hook that keeps the method's last step statistics and its BatchNorm fallbacks."""

    def __new__(cls):
        from mmengine.hooks import Hook

        from stag_seg.structures import step_stats

        class Recorder(Hook):
            priority = 'LOW'  # after the adaptation hook (VERY_HIGH)

            def __init__(self) -> None:
                self.stats: dict = {}
                self.fallbacks: dict = {}

            def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                self.stats.update(step_stats(outputs))
                model = getattr(runner.model, 'module', runner.model)
                method = getattr(model, 'tta_method', None)
                if method is not None:
                    self.fallbacks = method.single_value_fallbacks()

        return Recorder()


def run_config(cfg, record: dict) -> dict:
    """Run ``cfg`` through ``Runner.test()`` with the hook; fill ``record``'s outcome."""
    import torch
    from mmengine.runner import Runner

    from stag_seg.structures import NotAdaptableError
    start = time.time()
    stage = 'build'
    try:
        runner = Runner.from_cfg(cfg)
        recorder = _Recorder()
        runner.register_hook(recorder)
        model = runner.model
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        stage = 'test'
        runner.test()
        moved = sum(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())
        stag = sorted(k for k in recorder.stats if k.startswith('stag'))
        record.update(moved_tensors=moved, stag_stats=stag,
                      bn_running_fallbacks=len(recorder.fallbacks))
        if moved and stag:
            record.update(outcome='adapted')
        else:
            record.update(outcome='crash', reason=f'the test ran but {moved} tensors moved and '
                          f'the steps had STAG statistics {stag}')
    except NotAdaptableError as exc:
        record.update(outcome='refused', reason=str(exc))
    except (ModuleNotFoundError, ImportError) as exc:
        record.update(outcome='not buildable', reason=f'{type(exc).__name__}: {exc}')
    except AssertionError as exc:
        if stage == 'build' and 'install' in str(exc):
            record.update(outcome='not buildable', reason=str(exc))
        else:
            record.update(outcome='crash', reason=_failure(exc))
    except Exception as exc:
        record.update(outcome='crash', reason=_failure(exc))
    finally:
        record['seconds'] = round(time.time() - start, 1)
        _release_memory()
    return record


def _release_memory() -> None:
    """Collect the run's objects and hand freed heap back to the system: a sweep builds a
    hundred models in one process, and glibc keeps what they freed otherwise."""
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def prepare_and_run(make_cfg, record: dict) -> dict:
    """Build the config with ``make_cfg()`` and run it; a config that cannot even be prepared
    is a crash of the sweep's own, recorded as such."""
    try:
        cfg = make_cfg()
    except Exception as exc:
        record.update(outcome='crash', reason=f'preparing the config: {_failure(exc)}')
        return record
    return run_config(cfg, record)


def _failure(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return (f'{type(exc).__name__}: {str(exc)[:400]} (at {osp.basename(where.filename)}:'
            f'{where.lineno})')


def sweep_mmseg(folders: list[str] | None, tmp: str) -> list[dict]:
    """One record per MMSeg folder (all of them, or ``folders``)."""
    data_root = write_cityscapes(osp.join(tmp, 'cityscapes'))
    records = []
    for folder, path in mmseg_configs():
        if folders is not None and folder not in folders:
            continue
        from mmengine.config import Config
        model_cfg = Config.fromfile(path).model.to_dict()
        record = dict(zoo='mmseg', folder=folder, config=osp.basename(path), batch_size=1)
        missing = missing_package(model_cfg)
        if missing:
            refusal = known_refusal(model_cfg)
            record.update(outcome='not buildable', reason=missing, would_refuse=refusal)
            records.append(record)
            print(_line(record), flush=True)
            continue
        size = SEG_INPUT
        try:
            if not plain_model_runs(path, size) and _crop_size(path):
                size = _crop_size(path)  # the stock model itself needs a larger input
        except Exception:
            pass  # building failed: run_config below records why
        record['input'] = list(size)
        prepare_and_run(lambda: seg_cfg(path, data_root, osp.join(tmp, 'work', folder), size),
                        record)
        if record['outcome'] == 'not buildable':
            record['would_refuse'] = known_refusal(model_cfg)
        records.append(record)
        print(_line(record), flush=True)
    return records


def sweep_mmpretrain(folders: list[str] | None, tmp: str,
                     batch_sizes: tuple[int, ...] = (1, 4)) -> tuple[list[dict], dict]:
    """Records per mmpretrain folder with an image classifier and batch size; and the other
    folders with the model type their first config builds."""
    data_root = write_image_folder(osp.join(tmp, 'images'))
    picked, others = mmpretrain_configs(folders)
    records = []
    for folder, path in picked:
        for batch_size in batch_sizes:
            record = dict(zoo='mmpretrain', folder=folder,
                          config=osp.relpath(path, osp.join(zoo_root('mmpretrain'), folder)),
                          batch_size=batch_size)
            prepare_and_run(lambda: cls_cfg(path, data_root, osp.join(tmp, 'work', folder),
                                            batch_size), record)
            records.append(record)
            print(_line(record), flush=True)
    return records, others


def _line(record: dict) -> str:
    note = record.get('reason', '')
    return (f"{record['zoo']:10} {record['folder']:20} bs {record['batch_size']} "
            f"{record['outcome']:13} {record.get('seconds', 0):6.1f}s {note[:150]}")


def counts(records: list[dict]) -> dict[str, dict[str, int]]:
    """Outcomes per zoo (each mmpretrain folder counted once per batch size)."""
    out: dict[str, dict[str, int]] = {}
    for record in records:
        zoo = out.setdefault(record['zoo'], dict.fromkeys(OUTCOMES, 0))
        zoo[record['outcome']] += 1
    return out


def environment() -> dict:
    import mmengine
    import mmpretrain
    import mmseg
    import torch

    from stag_seg import compat
    return dict(torch=torch.__version__, mmengine=mmengine.__version__,
                mmsegmentation=mmseg.__version__, mmpretrain=mmpretrain.__version__,
                mmcv='mmcv-lite with the pure-PyTorch ops fallback' if compat.MMCV_OPS_FALLBACK
                else 'compiled mmcv')


# ---------------------------------------------------------------------------- the table
def _note(record: dict) -> str:
    if record['outcome'] == 'adapted':
        note = f"{record['moved_tensors']} tensors adapted"
        fallbacks = record.get('bn_running_fallbacks')
        if fallbacks:
            layers = '1 BatchNorm layer sees' if fallbacks == 1 else \
                f'{fallbacks} BatchNorm layers see'
            note += f'; {layers} one value per channel and uses its running statistics'
        return note
    note = record.get('reason', '')
    if record.get('would_refuse'):
        note = f"{note.rstrip('.')}; once built, the toolkit would refuse it: " \
            f"{record['would_refuse']}"
    return note.replace('|', '\\|').replace('\n', ' ')


def table(document: dict) -> str:
    """The markdown of docs/en/supported_models.md, from the sweep's JSON document."""
    lines = ['# Supported models', '',
             'Generated by `tools/sweep_zoo.py` from `results/model_zoo/supported_models.json`; '
             'do not edit by hand.', '',
             'Every algorithm folder of the installed MMSeg and mmpretrain config zoos, one config '
             'each, built with random weights, with `custom_imports` and a `STAGHook` (Tent and '
             "STAG's default) added, through the stock `Runner.test()` at batch size 1 (and 4 "
             'for classifiers). Outcomes: **adapted** (the test ran, the adapted parameters '
             "moved, STAG's statistics were in the steps), **refused** (the toolkit's message "
             'names what the model lacks), **not buildable** here (a package or compiled op is '
             'missing), **crash** (anything else).', '',
             'Environment: ' + ', '.join(f'{k} {v}' for k, v in document['environment'].items())
             + '.', '']
    for zoo, title in (('mmseg', 'MMSegmentation'), ('mmpretrain', 'mmpretrain')):
        rows = [r for r in document['records'] if r['zoo'] == zoo]
        if not rows:
            continue
        tally = document['counts'][zoo]
        lines += [f'## {title}', '',
                  ', '.join(f'{tally[o]} {o}' for o in OUTCOMES) + '.', '',
                  '| Algorithm | Config | Batch | Outcome | Notes |', '|---|---|---|---|---|']
        for r in rows:
            lines.append(f"| {r['folder']} | `{r['config']}` | {r['batch_size']} | "
                         f"{r['outcome']} | {_note(r)} |")
        lines.append('')
    others = document.get('not_image_classifiers')
    if others:
        lines += ['mmpretrain folders without an image-classifier config (the model type their '
                  'first config builds): '
                  + ', '.join(f'{k} ({v})' for k, v in sorted(others.items())) + '.', '']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--zoo', choices=('mmseg', 'mmpretrain', 'all'), default='all')
    parser.add_argument('--folders', nargs='+', help='only these algorithm folders')
    parser.add_argument('--out', help='write the JSON document here')
    parser.add_argument('--table', help='write the markdown table here')
    parser.add_argument('--merge', action='store_true',
                        help='with --folders: replace only those folders\' records in the '
                             'existing --out document')
    args = parser.parse_args(argv)
    if args.merge and not (args.out and args.folders and osp.isfile(args.out)):
        parser.error('--merge needs --folders and an existing --out document')
    import stag_seg  # noqa: F401  (the mmcv.ops fallback before mmseg is imported)
    records, others = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.zoo in ('mmseg', 'all'):
            records += sweep_mmseg(args.folders, tmp)
        if args.zoo in ('mmpretrain', 'all'):
            found, others = sweep_mmpretrain(args.folders, tmp)
            records += found
    if args.merge:
        with open(args.out) as f:
            old = json.load(f)
        swept = {(r['zoo'], r['folder']) for r in records}
        new = {(r['zoo'], r['folder'], r['batch_size']): r for r in records}
        merged = []
        for r in old['records']:
            key = (r['zoo'], r['folder'], r['batch_size'])
            if (r['zoo'], r['folder']) not in swept:
                merged.append(r)
            elif key in new:
                merged.append(new.pop(key))
        records = merged + list(new.values())
        others = {**old.get('not_image_classifiers', {}), **others}
    document = dict(environment=environment(), hook=HOOK, counts=counts(records),
                    records=records, not_image_classifiers=others)
    for zoo, tally in document['counts'].items():
        print(f'{zoo}: ' + ', '.join(f'{tally[o]} {o}' for o in OUTCOMES))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(document, f, indent=1)
    if args.table:
        with open(args.table, 'w') as f:
            f.write(table(document))
    return 1 if any(t['crash'] for t in document['counts'].values()) else 0


if __name__ == '__main__':
    sys.exit(main())
