"""Does STAG's alignment separate correct from wrong predictions, beyond the confidence? The
AUROC of each signal of :mod:`stag_study.signals`, per benchmark and model stage.

    python projects/stag_study/tools/analyze_signal.py [--families gn bn ln vit]
        [--streams demo calibrated] [--out projects/stag_study/results/signal_auroc.json]

Benchmarks, from the repository's data (``make demo-cls-data``, ``make demo-data``,
``make demo-data-calibrated``):

- Digits-C, each source model (``--families``): every sample of four corruptions at severity 5
  (noise, blur, weather, digital), the source model; then a Tent run (the family's Tent config:
  its optimizer and batch) over the 15 corruptions in order, whose predictions are scored in
  three windows of the stream, the first, middle and last tenth of its batches (``early``,
  ``middle``, ``late``), before each batch's update. PLPD is DeYO's (its patch shuffle).
- the segmentation streams (``--streams``), per pixel at the decode head's resolution (labels
  resized by nearest neighbour, ignored pixels left out): the source model per condition, then
  Tent (the demo's config) over three rounds, scored in the same three windows.

Writes the JSON (every cell's AUROCs, and the ROC curves of one cell), its markdown tables
(:func:`signal_markdown`) and the figure of the ROC curves (:func:`plot_roc`).
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import sys

import numpy as np
import torch

PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(osp.dirname(PROJECT))
FAMILIES = {'gn': [], 'bn': ['configs/_base_/families/digits-c_bn.py'],
            'ln': ['configs/_base_/families/digits-c_ln.py'],
            'vit': ['configs/_base_/families/digits-c_vit.py']}
CORRUPTIONS = ('gaussian_noise', 'defocus_blur', 'fog', 'jpeg_compression')
STREAMS = {'demo': 'data/synthetic_acdc', 'calibrated': 'data/synthetic_acdc_calibrated'}
WINDOWS = {'early': (0.0, 0.1), 'middle': (0.45, 0.55), 'late': (0.9, 1.0)}
#: The columns of the tables: the alignment of three readings, the confidence signals, PLPD,
#: and the alignment's information beyond the confidence.
COLUMNS = {
    'cos/feature/entropy': 'cos feature', 'cos/logit/entropy': 'cos logit',
    'cos/weight/entropy': 'cos weight', 'cos/feature/cross_entropy': 'cos feature CE',
    'neg_entropy': '-H', 'max_softmax': 'max p', 'plpd': 'PLPD',
    'resid/cos/feature/entropy': 'resid feature', 'resid/cos/logit/entropy': 'resid logit',
    'resid/cos/weight/entropy': 'resid weight',
}
#: The cell whose ROC curves the figure draws.
FIGURE_CELL = ('digits-c', 'gn', 'source', 'gaussian_noise')
MAX_PIXELS = 200_000  # per segmentation cell, a seeded subsample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--families', nargs='*', choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument('--streams', nargs='*', choices=list(STREAMS), default=list(STREAMS))
    parser.add_argument('--out', default='projects/stag_study/results/signal_auroc.json')
    return parser.parse_args()


# ---------------------------------------------------------------------------- the tables
def signal_markdown(doc: dict) -> str:
    """The tables of a document this tool wrote: AUROC per cell and signal."""
    lines = []
    for title, keep in (('Classification (per sample)', 'digits-c'),
                        ('Segmentation (per pixel)', 'segmentation')):
        cells = [c for c in doc['cells'] if c['benchmark'] == keep]
        if not cells:
            continue
        names = [n for n in COLUMNS if any(n in c['auroc'] for c in cells)]
        lines += [f'**{title}**', '',
                  '| model | stage | domain | n | accuracy | '
                  + ' | '.join(COLUMNS[n] for n in names) + ' |',
                  '|---|---|---|---:|---:|' + '---:|' * len(names)]
        for c in cells:
            values = [c['auroc'].get(n) for n in names]
            lines.append(f'| {c["model"]} | {c["stage"]} | {c["domain"]} | {c["n"]} | '
                         f'{c["accuracy"]:.1f} | '
                         + ' | '.join('' if v is None or math.isnan(v) else f'{v:.3f}'
                                      for v in values) + ' |')
        lines.append('')
    lines.append('AUROC of each signal separating correct from wrong predictions (0.5: none; '
                 'below 0.5: the wrong way round); "resid": the cosine after the max softmax is '
                 'regressed out of it.')
    return '\n'.join(lines)


def plot_roc(doc: dict, path: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.0, 4.6), dpi=100)
    for name, (fpr, tpr) in doc['figure']['curves'].items():
        ax.plot(fpr, tpr, lw=1.2, label=f'{COLUMNS.get(name, name)} '
                f'({doc["figure"]["auroc"][name]:.3f})')
    ax.plot([0, 1], [0, 1], color='0.6', lw=0.8, ls='--')
    ax.set_xlabel('wrong predictions kept (false positive rate)')
    ax.set_ylabel('correct predictions kept (true positive rate)')
    ax.set_title(' / '.join(doc['figure']['cell']), fontsize=9)
    ax.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- measuring
def _cell(benchmark, model, stage, domain, signals, correct, plpd=None) -> dict:
    from stag_study.signals import auroc
    valid = signals['valid']
    cell = dict(benchmark=benchmark, model=model, stage=stage, domain=domain,
                n=int(valid.sum()), accuracy=100.0 * float(correct[valid].double().mean()),
                auroc={})
    for name in COLUMNS:
        values = plpd if name == 'plpd' else signals.get(name)
        if values is not None:
            cell['auroc'][name] = auroc(values[valid], correct[valid])
    return cell


def _tap_signals(model, inputs, logits_fn, tap):
    from stag_study.signals import position_signals
    with torch.no_grad(), tap.capture():
        logits_fn(model, inputs)
        out = tap.output()
    tap.clear()
    return out, position_signals(out.logits, out.weight, out.bias, out.features)


def _digits_model(family: str, method: str):
    from mmengine.config import ConfigDict
    from mmpretrain.registry import MODELS

    from stag_seg.compat import load_checkpoint
    from stag_seg.engine import build_config
    cfg = build_config(osp.join(ROOT, f'configs/digits_c/small-convnet_{method}.py'),
                       [osp.join(ROOT, f) for f in FAMILIES[family]])
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg.model.to_dict()))
    state = load_checkpoint(osp.join(ROOT, cfg.load_from))
    model.load_state_dict(state.get('state_dict', state))
    return model.eval(), cfg


def _plpd(model, inputs, logits, tap, logits_fn):
    """DeYO's PLPD of every sample (its default patch shuffle, seed 0)."""
    from stag_seg.methods import DeYO
    from stag_seg.structures import StepContext
    deyo = DeYO(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)))
    ctx = StepContext(inputs, model, logits_fn, tap)
    with torch.no_grad():
        return deyo.plpd(logits.detach(), ctx).double()


def digits_cells(family: str, data: str = 'data/digits_c') -> tuple[list[dict], dict]:
    """The source model's cells per corruption, and a Tent run's per window."""
    from stag_seg.models.adapter import classifier_logits
    from stag_seg.models.tap import tap_cls_head
    labels = torch.from_numpy(np.load(osp.join(data, 'labels.npy'))).long()
    images = {c: torch.from_numpy(np.load(osp.join(data, f'{c}.npy'))).permute(0, 3, 1, 2)
              for c in CORRUPTIONS}
    cells, figure = [], None
    source, _ = _digits_model(family, 'source')
    tap = tap_cls_head(source)
    for corruption in CORRUPTIONS:
        inputs = source.data_preprocessor(dict(inputs=list(images[corruption])), False)['inputs']
        out, signals = _tap_signals(source, inputs, classifier_logits, tap)
        correct = out.logits.argmax(1) == labels
        plpd = _plpd(source, inputs, out.logits, tap, classifier_logits)
        cells.append(_cell('digits-c', family, 'source', corruption, signals, correct, plpd))
        if FIGURE_CELL == ('digits-c', family, 'source', corruption):
            figure = _figure(FIGURE_CELL, signals, correct, plpd)
    # Tent along the continual stream of the 15 corruptions
    from stag_seg.datasets import CORRUPTIONS as ALL
    model, cfg = _digits_model(family, 'tent')
    batch_size = cfg.test_dataloader.batch_size
    stream = [(c, i) for c in ALL for i in range(0, len(labels), batch_size)]
    windows = {name: (int(a * len(stream)), max(int(b * len(stream)), int(a * len(stream)) + 1))
               for name, (a, b) in WINDOWS.items()}
    gathered = {name: [] for name in windows}
    model.tta_adapter.attach()
    tap = model.tta_adapter.tap
    from mmpretrain.structures import DataSample
    for step, (corruption, start) in enumerate(stream):
        x = torch.from_numpy(np.load(osp.join(data, f'{corruption}.npy'), mmap_mode='r')[
            start:start + batch_size]).permute(0, 3, 1, 2)
        y = labels[start:start + batch_size]
        batch = dict(inputs=list(x), data_samples=[DataSample().set_gt_label(int(v)) for v in y])
        for name, (a, b) in windows.items():
            if a <= step < b:
                inputs = model.data_preprocessor(copy.deepcopy(batch), False)['inputs']
                out, signals = _tap_signals(model, inputs, classifier_logits, tap)
                plpd = _plpd(model, inputs, out.logits, tap, classifier_logits)
                gathered[name].append((signals, out.logits.argmax(1) == y, plpd))
        model.test_step(batch)
    for name, parts in gathered.items():
        signals = {k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]}
        correct = torch.cat([p[1] for p in parts])
        plpd = torch.cat([p[2] for p in parts])
        cells.append(_cell('digits-c', family, f'Tent {name}', 'stream', signals, correct,
                           plpd))
    return cells, figure


def _figure(cell, signals, correct, plpd) -> dict:
    from stag_study.signals import auroc, roc_curve
    valid = signals['valid']
    curves, areas = {}, {}
    for name in ('cos/feature/entropy', 'cos/logit/entropy', 'neg_entropy', 'max_softmax',
                 'plpd', 'resid/cos/feature/entropy'):
        values = plpd if name == 'plpd' else signals[name]
        fpr, tpr = roc_curve(values[valid], correct[valid])
        keep = torch.linspace(0, fpr.numel() - 1, min(200, fpr.numel())).round().long()
        curves[name] = [fpr[keep].tolist(), tpr[keep].tolist()]
        areas[name] = auroc(values[valid], correct[valid])
    return dict(cell=list(cell), curves=curves, auroc=areas)


def segmentation_cells(stream: str) -> list[dict]:
    """The source model's cells per condition and a Tent run's per window, per pixel."""
    import torch.nn.functional as F
    from mmengine.config import ConfigDict
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    from stag_seg.compat import load_checkpoint
    from stag_seg.engine import build_config
    from stag_seg.models.adapter import segmentor_logits
    init_default_scope('mmseg')  # the streams' pipelines name MMSeg's transforms
    root = STREAMS[stream]
    cells = []

    def build(method):
        cfg = build_config(osp.join(ROOT, f'configs/demo/segformer-mit-b0_{method}.py'), [],
                           {'test_dataloader.dataset.data_root': root})
        torch.manual_seed(0)
        model = MODELS.build(ConfigDict(cfg.model.to_dict()))
        state = load_checkpoint(osp.join(ROOT, cfg.load_from))
        model.load_state_dict(state.get('state_dict', state))
        return model.eval(), cfg

    def batches(cfg, condition):
        dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset.to_dict())
        dataset_cfg['condition'] = condition
        dataset = DATASETS.build(dataset_cfg)
        for i in range(len(dataset)):
            yield pseudo_collate([dataset[i]])

    def labels_at(batch, logits):
        label = torch.stack([s.gt_sem_seg.data for s in batch['data_samples']]).float()
        return F.interpolate(label, size=logits.shape[2:], mode='nearest')[:, 0].long()

    gen = torch.Generator().manual_seed(0)

    def subsample(signals, correct):
        n = correct.numel()
        if n <= MAX_PIXELS:
            return signals, correct
        keep = torch.randperm(n, generator=gen)[:MAX_PIXELS]
        return {k: v[keep] for k, v in signals.items()}, correct[keep]

    def add(stage, domain, parts):
        signals = {k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]}
        correct = torch.cat([p[1] for p in parts])
        signals, correct = subsample(signals, correct)
        cells.append(_cell('segmentation', stream, stage, domain, signals, correct))

    source, cfg = build('source')
    from stag_seg.models.tap import tap_decode_head
    tap = tap_decode_head(source)
    for condition in cfg.test_cfg.domains:
        parts = []
        for batch in batches(cfg, condition):
            data = source.data_preprocessor(batch, False)
            out, signals = _tap_signals(source, data['inputs'], segmentor_logits, tap)
            label = labels_at(data, out.logits)
            keep = (label != 255).flatten()
            correct = (out.logits.argmax(1) == label).flatten()
            signals = {k: v[keep] for k, v in signals.items()}
            parts.append((signals, correct[keep]))
        add('source', condition, parts)
    model, cfg = build('tent')
    model.tta_adapter.attach()
    tap = model.tta_adapter.tap
    steps = [(r, c) for r in range(cfg.test_cfg.rounds) for c in cfg.test_cfg.domains]
    total = sum(len(DATASETS.build(dict(cfg.test_dataloader.dataset.to_dict(), condition=c)))
                for _, c in steps)
    windows = {n: (int(a * total), int(b * total)) for n, (a, b) in WINDOWS.items()}
    gathered, step = {n: [] for n in windows}, 0
    for _, condition in steps:
        for batch in batches(cfg, condition):
            for name, (a, b) in windows.items():
                if a <= step < b:
                    data = model.data_preprocessor(copy.deepcopy(batch), False)
                    out, signals = _tap_signals(model, data['inputs'], segmentor_logits, tap)
                    label = labels_at(data, out.logits)
                    keep = (label != 255).flatten()
                    correct = (out.logits.argmax(1) == label).flatten()
                    gathered[name].append(({k: v[keep] for k, v in signals.items()},
                                           correct[keep]))
            model.test_step(batch)
            step += 1
    for name, parts in gathered.items():
        add(f'Tent {name}', 'stream', parts)
    return cells


def main() -> None:
    args = parse_args()
    sys.path.insert(0, PROJECT)
    os.chdir(ROOT)
    import stag_seg  # noqa: F401  (registers the models)
    cells, figure = [], None
    for family in args.families:
        found, fig = digits_cells(family)
        cells += found
        figure = figure or fig
        print(f'digits-c {family}: {len(found)} cells', flush=True)
    for stream in args.streams:
        cells += segmentation_cells(stream)
        print(f'segmentation {stream}: done', flush=True)
    doc = dict(columns=COLUMNS, windows=WINDOWS, corruptions=list(CORRUPTIONS), cells=cells,
               figure=figure)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(doc, f, indent=1)
    stem = osp.splitext(args.out)[0]
    with open(stem + '.md', 'w') as f:
        f.write(signal_markdown(doc) + '\n')
    if figure is not None:
        plot_roc(doc, stem + '.png')
    print(signal_markdown(doc))
    print(f'written: {args.out} and its table and figure beside it')


if __name__ == '__main__':
    main()
