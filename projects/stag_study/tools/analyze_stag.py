"""How each STAG reading acts on real and random classifiers: the measurements of
projects/stag_study/README.md, "Readings".

    python projects/stag_study/tools/analyze_stag.py [--corruptions gaussian_noise fog ...]
        [--images 400] [--out work_dirs/stag_readings.json]

For each source model of Digits-C (the GroupNorm, BatchNorm and LayerNorm SmallConvNets and the
small ViT, from their committed checkpoints) it takes the logits and classifier inputs of the
first ``--images`` test digits of each corruption (severity 5, ``data/digits_c``: ``make
demo-cls-data``), and for two random classifiers logits at three confidence scales. For every
reading it reports the cosine between its descent direction and the entropy's (per position:
the fraction positive and the quartiles; and of the batch's summed gradients), and the loss along
a collapse to the most predicted class. For each trained classifier it also reports how sharp
the prototypes' softmax is per anchor temperature. Prints markdown tables and writes JSON.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
import torch

#: The project (its ``stag_study`` package) and the repository (the configs' paths start there).
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(osp.dirname(PROJECT))
FAMILIES = {
    'gn': [],
    'bn': ['configs/_base_/families/digits-c_bn.py'],
    'ln': ['configs/_base_/families/digits-c_ln.py'],
    'vit': ['configs/_base_/families/digits-c_vit.py'],
}
READINGS = {
    'feature': dict(space='feature'),
    'logit': dict(space='logit'),
    'weight': dict(space='weight'),
    'feature, H-weighted': dict(space='feature', weighting='entropy'),
    'feature, CE': dict(space='feature', gradient='cross_entropy'),
    'logit, CE': dict(space='logit', gradient='cross_entropy'),
    'feature, tau_a=4': dict(space='feature', anchor_temperature=4.0),
    'feature, CE, tau_a=4': dict(space='feature', gradient='cross_entropy',
                                 anchor_temperature=4.0),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='how each STAG reading acts on classifiers')
    parser.add_argument('--data', default='data/digits_c')
    parser.add_argument('--corruptions', nargs='+',
                        default=['gaussian_noise', 'defocus_blur', 'fog', 'contrast'])
    parser.add_argument('--images', type=int, default=400, help='per corruption')
    parser.add_argument('--families', nargs='+', choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument('--out', default='work_dirs/stag_readings.json')
    return parser.parse_args()


@torch.no_grad()
def model_outputs(family: str, images: np.ndarray) -> dict:
    """Logits, classifier inputs and the classifier of one committed Digits-C source model."""
    from mmpretrain.registry import MODELS

    from stag_seg.compat import load_checkpoint
    from stag_seg.engine import build_config
    from stag_seg.models.adapter import classifier_logits
    from stag_seg.models.tap import tap_cls_head

    cfg = build_config(osp.join(ROOT, 'configs/digits_c/small-convnet_source.py'),
                       [osp.join(ROOT, f) for f in FAMILIES[family]])
    model_cfg = cfg.model.to_dict()
    model_cfg.pop('tta_method', None)
    model_cfg['type'] = 'ImageClassifier'
    model = MODELS.build(model_cfg)
    state = load_checkpoint(osp.join(ROOT, cfg.load_from))
    model.load_state_dict(state.get('state_dict', state))
    model.eval()
    tap = tap_cls_head(model)
    inputs = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2)
    data = model.data_preprocessor(dict(inputs=list(inputs)), False)
    with tap.capture():
        classifier_logits(model, data['inputs'])
        out = tap.output()
    return dict(logits=out.logits, features=out.features, weight=out.weight.detach(),
                bias=None if out.bias is None else out.bias.detach())


def random_outputs(num_classes: int, dim: int, seed: int) -> list[tuple[str, dict]]:
    """A random classifier and positions at three confidence scales."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_classes, dim, generator=gen, dtype=torch.float64) / dim ** 0.5
    bias = torch.zeros(num_classes, dtype=torch.float64)
    rows = []
    for scale in (1.0, 3.0, 8.0):
        z = torch.randn(2000, dim, generator=gen, dtype=torch.float64) * scale
        rows.append((f'random C={num_classes} D={dim}, |z| x{scale:g}',
                     dict(logits=z @ weight.t() + bias, features=z, weight=weight, bias=bias)))
    return rows


def analyse(name: str, out: dict) -> dict:
    from stag_study.analysis import collapse_curve, descent_cosines

    logits, feats = out['logits'].double(), out['features'].double()
    probs = logits.softmax(1)
    result = dict(source=name, positions=int(logits.size(0)),
                  mean_confidence=float(probs.max(1).values.mean()), readings={})
    for label, reading in READINGS.items():
        cos = descent_cosines(logits, out['weight'], out['bias'], feats, **reading)
        curve = collapse_curve(logits, out['weight'], out['bias'], feats,
                               shifts=(0.0, 2.0, 4.0, 8.0), **reading)
        result['readings'][label] = dict(cosine=cos, collapse=curve)
    return result


def main() -> None:
    args = parse_args()
    sys.path.insert(0, PROJECT)
    os.chdir(ROOT)
    import stag_seg  # noqa: F401  (registers the models)
    from stag_study.analysis import anchor_sharpness

    torch.set_grad_enabled(True)
    results, sharpness = [], {}
    for family in args.families:
        logits, feats = [], []
        for corruption in args.corruptions:
            path = osp.join(args.data, f'{corruption}.npy')
            if not osp.isfile(path):
                sys.exit(f'{path} not found: make the Digits-C data with `make demo-cls-data`')
            images = np.load(path, mmap_mode='r')
            per_severity = len(images) // 5
            out = model_outputs(family, images[4 * per_severity:4 * per_severity + args.images])
            logits.append(out['logits'])
            feats.append(out['features'])
        out.update(logits=torch.cat(logits), features=torch.cat(feats))
        sharpness[family] = anchor_sharpness(out['weight'], out['bias'])
        results.append(analyse(f'{family} source on Digits-C', out))
    for num_classes, dim, seed in ((10, 64, 0), (19, 256, 1)):
        for name, out in random_outputs(num_classes, dim, seed):
            results.append(analyse(name, out))

    print('\n## descent direction vs the entropy\'s: % positive / median / batch cosine\n')
    labels = list(READINGS)
    print('| positions | conf. | ' + ' | '.join(labels) + ' |')
    print('|---|---|' + '---|' * len(labels))
    for r in results:
        cells = [f"{c['cosine']['positive'] * 100:.0f} / {c['cosine']['median']:+.2f} / "
                 f"{c['cosine']['batch']:+.2f}" for c in r['readings'].values()]
        print(f"| {r['source']} | {r['mean_confidence']:.2f} | " + ' | '.join(cells) + ' |')
    print('\n## loss along a collapse (shift 0 -> 8 on the most predicted class) and at its '
          'prototype\n')
    print('| positions | ' + ' | '.join(labels) + ' |')
    print('|---|' + '---|' * len(labels))
    for r in results:
        cells = [f"{c['collapse']['loss'][0]:.3f} -> {c['collapse']['loss'][-1]:.3f} "
                 f"({c['collapse']['at_prototype']:.2f})" for c in r['readings'].values()]
        print(f"| {r['source']} | " + ' | '.join(cells) + ' |')
    print('\n## prototype sharpness: mean max q_c / mean S_c/ln C / own class, per anchor '
          'temperature\n')
    temps = [row['temperature'] for row in next(iter(sharpness.values()))]
    print('| model | ' + ' | '.join(f'tau_a={t:g}' for t in temps) + ' |')
    print('|---|' + '---|' * len(temps))
    for family, rows in sharpness.items():
        cells = [f"{r['max_q_mean']:.3f} / {r['entropy_norm_mean']:.3f} / {r['own_class']:.1f}"
                 for r in rows]
        print(f'| {family} | ' + ' | '.join(cells) + ' |')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(corruptions=args.corruptions, images=args.images, readings=READINGS,
                       results=results, sharpness=sharpness), f, indent=1)
    print(f'\nwritten: {args.out}')


if __name__ == '__main__':
    main()
