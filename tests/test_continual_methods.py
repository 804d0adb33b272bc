"""RDumb, RoTTA, RMT and ROID against their reference steps, restated here in plain PyTorch.

Each oracle below is written from a reading of the reference code (mariodoebler/
test-time-adaptation ``classification/methods/{eata,rotta,rmt,roid}.py`` and ``base.py``;
BIT-DA/RoTTA ``core/adapter/rotta.py``, ``core/utils/{memory,bn_layers}.py``), works in the
references' image space (RGB in [0, 1], the normalisation inside the model) and runs on a copy of
the same tiny mmpretrain classifier as the toolkit's method, in float64, on the same batches.
After several steps every prediction and every adapted parameter agree to 1e-9, for a BatchNorm
ResNet, a GroupNorm ResNet and a ViT.

Randomness: the references draw their views from torch's global generator; the methods draw
them from a generator of their own in the reference's order (``draw_reference_view``). The
oracles draw theirs from a generator seeded the same way, through the toolkit's ``apply_view``
(whose pixels are checked against torchvision's in test_methods.py and here); the draw order
itself is checked against torchvision's own ``get_params`` on torch's global generator.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from torch import nn

from stag_seg.methods.augment import apply_view, draw_reference_view
from stag_seg.structures import step_stats

NUM_CLS = 4
FAMILIES = ['bn_resnet', 'gn_resnet', 'ln_vit']
MEAN, STD = 127.5, 64.0


# ------------------------------------------------------------------------------ the harness
def _cfg(family: str) -> dict:
    cfg = dict(type='ImageClassifier',
               data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=NUM_CLS,
                                      mean=[MEAN] * 3, std=[STD] * 3, to_rgb=True))
    if family.endswith('resnet'):
        norm = dict(type='GN', num_groups=4) if family == 'gn_resnet' else dict(type='BN')
        cfg.update(backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8,
                                 out_indices=(3, ), norm_cfg=norm),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=NUM_CLS, in_channels=64))
    else:
        cfg.update(backbone=dict(type='VisionTransformer', img_size=32, patch_size=8,
                                 arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                           feedforward_channels=64)),
                   head=dict(type='VisionTransformerClsHead', num_classes=NUM_CLS,
                             in_channels=32))
    return cfg


def _models(family: str, tta_method: dict, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(the toolkit's adapting classifier, a plain copy of the same network for the oracle),
    both float64."""
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(seed)
        plain = MODELS.build(_cfg(family))
        with torch.no_grad():  # source statistics unlike the test data's, and a spread head
            for m in plain.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
            head = _classifier(plain)
            head.weight.mul_(8)
        tta = MODELS.build(dict(_cfg(family), type='TTAImageClassifier', tta_method=tta_method))
        tta.load_state_dict(plain.state_dict())
    return tta.double().eval(), plain.double().eval()


def _classifier(net: nn.Module) -> nn.Linear:
    head = net.head
    return head.fc if hasattr(head, 'fc') else head.layers.head


def _batch(seed: int, num: int) -> dict:
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8)
              for _ in range(num)]
    return dict(inputs=images, data_samples=[DataSample() for _ in range(num)])


class Oracle:
    """A plain network seen as the references see theirs: ``forward`` on [0, 1] RGB images
    (normalised inside), ``features`` the classifier's input."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def pixels(self, batch: dict) -> torch.Tensor:
        inputs = self.net.data_preprocessor(batch)['inputs']
        return (inputs * STD + MEAN) / 255

    def normalise(self, x):
        return (x * 255 - MEAN) / STD

    def features(self, x):
        return self.net.head.pre_logits(self.net.extract_feat(self.normalise(x)))

    def __call__(self, x):
        return _classifier(self.net)(self.features(x))


def _run_toolkit(tta: nn.Module, batches: list[dict]) -> tuple[list, list]:
    scores, stats = [], []
    for batch in batches:
        with torch.no_grad():
            out = tta.test_step(copy.deepcopy(batch))
        scores.append(torch.stack([s.pred_score for s in out]))
        stats.append(step_stats(out))
    return scores, stats


def _assert_parity(tta, oracle_net, scores, oracle_logits, names=None):
    """Every prediction (as scores, and its argmax) and every parameter within 1e-9."""
    for step, (got, logits) in enumerate(zip(scores, oracle_logits)):
        expected = logits.softmax(1)
        assert torch.equal(got.argmax(1), expected.argmax(1)), f'step {step}'
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-9, msg=f'step {step}')
    ours = dict(tta.named_parameters())
    theirs = dict(oracle_net.named_parameters())
    names = names or theirs
    for name in names:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-9, msg=name)


def _entropy(logits):
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


def _norm_affine(net: nn.Module, types) -> list:
    return [p for m in net.modules() if isinstance(m, types)
            for n, p in m.named_parameters(recurse=False) if n in ('weight', 'bias')]


def _batch_stats_bn(net: nn.Module) -> None:
    """The references' BN2d: test-batch statistics, running statistics dropped."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats = False
            m.running_mean = m.running_var = None


# ------------------------------------------------------------------------------ RDumb
def _rdumb_oracle(oracle: Oracle, xs, lr, e0, d_margin, reset_after):
    """mariodoebler's EATA with FISHER_ALPHA 0 (eata.py forward_and_adapt), reset by its base
    (base.py forward: after every RESET_AFTER_NUM_UPDATES-th call)."""
    net = oracle.net
    net.eval()
    net.requires_grad_(False)
    _batch_stats_bn(net)
    types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
    for m in net.modules():
        if isinstance(m, types):
            m.requires_grad_(True)
    opt = torch.optim.SGD(_norm_affine(net, types), lr=lr, momentum=0.9, nesterov=True)
    source, source_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict())
    probs_ema, updates, outputs = None, 0, []
    for x in xs:
        with torch.enable_grad():
            logits = oracle(x)
            ent = _entropy(logits)
            reliable = torch.where(ent < e0)[0]
            ent_r, probs_r = ent[reliable], logits[reliable].softmax(1)
            if probs_ema is not None:
                cos = F.cosine_similarity(probs_ema[None], probs_r.detach(), dim=1)
                kept = torch.where(cos.abs() < d_margin)[0]
                ent_r, probs_r = ent_r[kept], probs_r[kept]
            if probs_ema is None:
                new = probs_r.mean(0).detach() if probs_r.size(0) else None
            else:
                new = (0.9 * probs_ema + 0.1 * probs_r.mean(0).detach() if probs_r.size(0)
                       else probs_ema)
            loss = (ent_r * (1 / torch.exp(ent_r.detach() - e0))).mean(0)
            probs_ema = new
            if ent_r.size(0):
                loss.backward()
                opt.step()
            opt.zero_grad()
        outputs.append(logits.detach())
        updates += 1
        if updates % reset_after == 0:
            net.load_state_dict(source)
            opt.load_state_dict(source_opt)
            probs_ema = None
    return outputs


@pytest.mark.parametrize('family', FAMILIES)
def test_rdumb_equals_the_reference_eata_without_fisher_and_its_reset(family):
    lr, e0, d_margin, every = 0.05, 1.3, 0.4, 3
    method = dict(type='RDumb', e0=e0, d_margin=d_margin, reset_every=every,
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9,
                                                    nesterov=True)))
    tta, plain = _models(family, method)
    batches = [_batch(seed, 8) for seed in range(7)]
    scores, stats = _run_toolkit(tta, batches)
    oracle = Oracle(plain)
    logits = _rdumb_oracle(oracle, [oracle.pixels(b) for b in batches], lr, e0, d_margin, every)
    _assert_parity(tta, plain, scores, logits)
    # the scenario exercises what it should: steps with and without a selection, two resets
    assert [s['scheduled_reset'] for s in stats] == [0, 0, 1, 0, 0, 1, 0]
    assert {s['skipped'] for s in stats} == {0.0, 1.0}
