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


# ------------------------------------------------------------------------------ RoTTA
class _RBN(nn.Module):
    """BIT-DA's RobustBN2d (core/utils/bn_layers.py), restated: blend the held statistics with
    the batch's (biased variance) in train mode, keep the blend, normalise with it."""

    def __init__(self, bn: nn.BatchNorm2d, alpha: float) -> None:
        super().__init__()
        self.alpha, self.eps = alpha, bn.eps
        self.register_buffer('source_mean', copy.deepcopy(bn.running_mean))
        self.register_buffer('source_var', copy.deepcopy(bn.running_var))
        self.weight = copy.deepcopy(bn.weight)
        self.bias = copy.deepcopy(bn.bias)

    def forward(self, x):
        if self.training:
            b_var, b_mean = torch.var_mean(x, dim=[0, 2, 3], unbiased=False)
            mean = (1 - self.alpha) * self.source_mean + self.alpha * b_mean
            var = (1 - self.alpha) * self.source_var + self.alpha * b_var
            self.source_mean, self.source_var = mean.detach(), var.detach()
        else:
            mean, var = self.source_mean, self.source_var
        x = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class _CSTU:
    """BIT-DA's category-balanced memory (core/utils/memory.py), restated."""

    def __init__(self, capacity, num_class, lambda_t=1.0, lambda_u=1.0):
        self.capacity, self.num_class = capacity, num_class
        self.per_class = capacity / num_class
        self.lambda_t, self.lambda_u = lambda_t, lambda_u
        self.data = [[] for _ in range(num_class)]  # [image, uncertainty, age]

    def score(self, age, u):
        return (self.lambda_t * 1 / (1 + math.exp(-age / self.capacity))
                + self.lambda_u * u / math.log(self.num_class))

    def occupancy(self):
        return sum(len(d) for d in self.data)

    def add_instance(self, x, cls, u):
        new_score = self.score(0, u)
        if self.remove_instance(cls, new_score):
            self.data[cls].append([x, u, 0])
        for items in self.data:
            for item in items:
                item[2] += 1

    def remove_instance(self, cls, score):
        if len(self.data[cls]) < self.per_class:
            if self.occupancy() < self.capacity:
                return True
            counts = [len(d) for d in self.data]
            majority = [c for c in range(self.num_class) if counts[c] == max(counts)]
            return self.remove_from_classes(majority, score)
        return self.remove_from_classes([cls], score)

    def remove_from_classes(self, classes, base):
        best = None
        for c in classes:
            for i, item in enumerate(self.data[c]):
                s = self.score(item[2], item[1])
                if best is None or s >= best[0]:
                    best = (s, c, i)
        if best is None:
            return True
        if best[0] > base:
            self.data[best[1]].pop(best[2])
            return True
        return False

    def get_memory(self):
        items = [item for items in self.data for item in items]
        return [i[0] for i in items], [i[2] / self.capacity for i in items]


def _rotta_oracle(oracle: Oracle, xs, lr, capacity, frequency, seed, nu=0.001, alpha=0.05):
    """BIT-DA's RoTTA step (core/adapter/rotta.py), with mariodoebler's configuration
    (rotta.py configure_model: LayerNorm and GroupNorm affine trained too) and EMA form."""
    net = oracle.net
    net.requires_grad_(False)
    for name, m in list(net.named_modules()):
        if isinstance(m, nn.BatchNorm2d):
            parent, _, child = name.rpartition('.')
            rbn = _RBN(m, alpha)
            rbn.requires_grad_(True)
            setattr(net.get_submodule(parent), child, rbn)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
            m.requires_grad_(True)
    opt = torch.optim.Adam(_norm_affine(net, (_RBN, nn.LayerNorm, nn.GroupNorm)), lr=lr,
                           betas=(0.9, 0.999), weight_decay=0.0)
    teacher = copy.deepcopy(net)
    for p in teacher.parameters():
        p.detach_()
    teacher_fn = Oracle(teacher)
    memory, current, outputs = _CSTU(capacity, NUM_CLS), 0, []
    gen = torch.Generator().manual_seed(seed)

    def strong_aug(x):
        return apply_view(x, draw_reference_view(gen, tuple(x.shape)))

    def update():
        net.train()
        teacher.train()
        data, ages = memory.get_memory()
        x = torch.stack(data)
        x_aug = strong_aug(x)
        with torch.no_grad():
            t = teacher_fn(x)
        s = oracle(x_aug)
        ages = torch.tensor(ages).float()
        w = (torch.exp(-ages) / (1 + torch.exp(-ages))).to(s)
        loss = (-(t.softmax(1) * s.log_softmax(1)).sum(1) * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            m = 1 - nu
            for tp, sp in zip(teacher.parameters(), net.parameters()):
                tp.data = m * tp.data + (1 - m) * sp.data

    for x in xs:
        with torch.no_grad():
            net.eval()
            teacher.eval()
            logits = teacher_fn(x)
            p = logits.softmax(1)
            labels = p.argmax(1)
            u = torch.sum(-p * torch.log(p + 1e-6), dim=1)
        with torch.enable_grad():
            for i in range(x.size(0)):
                memory.add_instance(x[i], int(labels[i]), float(u[i]))
                current += 1
                if current % frequency == 0:
                    update()
        outputs.append(logits)
    return outputs, memory, teacher


@pytest.mark.parametrize('family', FAMILIES)
def test_rotta_equals_the_reference_step(family):
    lr, capacity, frequency, seed = 0.02, 6, 5, 3
    method = dict(type='RoTTA', memory_size=capacity, update_frequency=frequency, seed=seed,
                  optim_wrapper=dict(optimizer=dict(type='Adam', lr=lr)))
    tta, plain = _models(family, method, seed=3)
    batches = [_batch(seed, 4) for seed in range(6)]  # 24 samples: 4 updates, mid-batch
    scores, stats = _run_toolkit(tta, batches)
    oracle = Oracle(plain)
    logits, memory, teacher = _rotta_oracle(oracle, [oracle.pixels(b) for b in batches], lr,
                                            capacity, frequency, seed)
    _assert_parity(tta, plain, scores, logits)
    # the teacher, its statistics and the memory agree too
    rotta = tta.tta_method
    for (name, ours), theirs in zip(rotta.teacher.named_parameters(), teacher.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9, msg=name)
    got_data, got_ages = rotta.memory.contents()
    want_data, want_ages = memory.get_memory()
    assert got_ages == want_ages
    assert [s['rotta_updated'] for s in stats] == [0, 1, 1, 1, 1, 0]
    assert [len(c) for c in rotta.memory.data] == [len(c) for c in memory.data]
    # the stored images are the oracle's (preprocessed here, [0, 1] pixels there)
    for ours, theirs in zip(got_data, want_data):
        torch.testing.assert_close((ours * STD + MEAN) / 255, theirs, rtol=0, atol=1e-12)
    if family == 'bn_resnet':
        ours = {n: b for n, b in tta.named_buffers() if n.endswith('running_mean')}
        theirs = {n.replace('source_mean', 'running_mean'): b
                  for n, b in plain.named_buffers() if n.endswith('source_mean')}
        assert ours.keys() == theirs.keys() and ours
        for name in ours:
            torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-9, msg=name)


# ------------------------------------------------------------------------------ the views
@pytest.mark.parametrize('roid', [False, True])
def test_reference_views_draw_in_the_reference_order(roid):
    """``draw_reference_view`` with a generator seeded s draws what the reference transform
    draws from torch's global generator after ``torch.manual_seed(s)``: ColorJitterPro's
    permutation and factors, then torchvision's own RandomAffine and GaussianBlur parameters,
    the flip and the noise (mariodoebler's transforms_cotta.py; ROID's variant has no blur and
    no noise)."""
    transforms = pytest.importorskip('torchvision.transforms')
    shape, ranges = (2, 3, 32, 32), [(0.6, 1.4), (0.7, 1.3), (0.5, 1.5), (-0.06, 0.06),
                                     (0.7, 1.3)]
    for seed in range(4):
        params = draw_reference_view(torch.Generator().manual_seed(seed), shape, blur=not roid,
                                     noise=not roid, padding='reflect' if roid else 'edge')
        torch.manual_seed(seed)
        order = torch.randperm(5).tolist()
        factors = {i: torch.tensor(1.0).uniform_(*ranges[i]).item() for i in order}
        angle, shift, scale, _ = transforms.RandomAffine.get_params(
            [-15.0, 15.0], [1 / 16, 1 / 16], [0.9, 1.1], None, [64, 64])  # the padded size
        sigma = None if roid else transforms.GaussianBlur.get_params(0.001, 0.5)
        flip = bool(torch.rand(1) < 0.5)
        noise = None if roid else torch.randn(shape) * 0.005
        assert list(params.order) == order
        assert [params.brightness, params.contrast, params.saturation, params.hue,
                params.gamma] == [factors[i] for i in range(5)]
        assert (params.angle, params.translate, params.scale, params.sigma, params.flip) == (
            angle, tuple(shift), scale, sigma, flip)
        assert (params.noise is None) if roid else torch.equal(params.noise, noise)
        assert params.padding == ('reflect' if roid else 'edge')


def test_roids_view_is_torchvisions_reflect_pad_affine_and_crop():
    TF = pytest.importorskip('torchvision.transforms.functional')
    from torchvision.transforms import InterpolationMode

    from stag_seg.methods.augment import warp
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    for angle, shift, scale in [(10.0, (3, -2), 1.05), (-14.0, (-4, 4), 0.92)]:
        padded = TF.pad(x, 16, padding_mode='reflect')
        expected = TF.affine(padded, angle=angle, translate=list(shift), scale=scale,
                             shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR)
        torch.testing.assert_close(warp(x, angle, shift, scale, None, 'reflect'),
                                   TF.center_crop(expected, 32), rtol=0, atol=1e-5)


def test_rotta_robust_batchnorm_is_built_on_attach_and_undone_on_detach():
    method = dict(type='RoTTA', memory_size=4, update_frequency=4,
                  optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.01)))
    tta, _ = _models('bn_resnet', method)
    originals = [m for m in tta.modules() if isinstance(m, nn.BatchNorm2d)]
    _run_toolkit(tta, [_batch(seed, 4) for seed in range(2)])  # one update: statistics move
    robust = [m for m in tta.modules() if type(m).__name__ == 'RobustBatchNorm']
    assert len(robust) == len(originals) and not any(
        isinstance(m, nn.BatchNorm2d) for m in tta.modules())
    held = [m.running_mean.clone() for m in robust]
    tta.tta_adapter.detach()
    assert [m for m in tta.modules() if isinstance(m, nn.BatchNorm2d)] == originals
    for bn, mean in zip(originals, held):  # the adapted statistics and affine parameters stay
        assert torch.equal(bn.running_mean, mean)
    with pytest.raises(ValueError, match='RoTTA updates after every update_frequency=4'):
        tta2, _ = _models('bn_resnet', method)
        _run_toolkit(tta2, [_batch(0, 9)])


# ------------------------------------------------------------------------------ RMT
def _source_loader(num=16, batch_size=4):
    """Labelled source images (every class), in a fixed order, as MMEngine batches."""
    from mmpretrain.structures import DataSample
    from torch.utils.data import DataLoader
    gen = torch.Generator().manual_seed(100)
    items = [(torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8), i % NUM_CLS)
             for i in range(num)]

    def collate(batch):
        return dict(inputs=[img for img, _ in batch],
                    data_samples=[DataSample().set_gt_label(label) for _, label in batch])
    return DataLoader(items, batch_size=batch_size, shuffle=False, collate_fn=collate)


def _sce(x, t, alpha=0.5):
    """mariodoebler's SymmetricCrossEntropy (utils/losses.py), per sample, on logits."""
    return (-(1 - alpha) * (t.softmax(1) * x.log_softmax(1)).sum(1)
            - alpha * (x.softmax(1) * t.log_softmax(1)).sum(1))


def _supcon(features, projector, tau):
    """rmt.py contrastive_loss in mode 'all', without labels: (B, V, D) features."""
    batch, views = features.shape[:2]
    flat = torch.cat(torch.unbind(features, dim=1), dim=0)  # view-major
    z = F.normalize(projector(flat), p=2, dim=1)
    logits = torch.div(torch.matmul(z, z.T), tau)
    logits = logits - torch.max(logits, dim=1, keepdim=True)[0].detach()
    mask = torch.eye(batch, dtype=z.dtype).repeat(views, views)
    not_self = torch.scatter(torch.ones_like(mask), 1, torch.arange(batch * views).view(-1, 1), 0)
    mask = mask * not_self
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
    mean_pos = (mask * log_prob).sum(1) / mask.sum(1)
    return (-(tau / tau) * mean_pos).view(views, batch).mean()


def _rmt_oracle(oracle: Oracle, xs, lr, seed, warmup_steps, lambdas, source, projection=16,
                momentum=0.999, tau=0.1):
    """mariodoebler's RMT (rmt.py __init__, warmup, forward_and_adapt, configure_model)."""
    net = oracle.net
    net.eval()
    net.requires_grad_(False)
    for m in net.modules():
        m.requires_grad_(True)
    _batch_stats_bn(net)
    params = [p for m in net.modules() for n, p in m.named_parameters(recurse=False)
              if n in ('weight', 'bias') and p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=0.0)
    src_iter = iter(source)

    def next_source():
        nonlocal src_iter
        try:
            batch = next(src_iter)
        except StopIteration:
            src_iter = iter(source)
            batch = next(src_iter)
        labels = torch.cat([s.gt_label for s in batch['data_samples']])
        return oracle.pixels(batch), labels

    gen = torch.Generator().manual_seed(seed)
    teacher = copy.deepcopy(net)
    for p in teacher.parameters():
        p.detach_()
    teacher_fn = Oracle(teacher)
    with torch.no_grad():  # prototypes: a fresh pass, the configured student
        feats, labels = [], []
        for batch in source:
            feats.append(oracle.features(oracle.pixels(batch)))
            labels.append(torch.cat([s.gt_label for s in batch['data_samples']]))
        feats, labels = torch.cat(feats), torch.cat(labels)
        protos = torch.stack([feats[labels == c].mean(0) for c in range(NUM_CLS)])
    torch.manual_seed(seed)
    projector = nn.Sequential(nn.Linear(protos.size(1), projection), nn.ReLU(),
                              nn.Linear(projection, projection)).double()
    opt.add_param_group(dict(params=projector.parameters(), lr=opt.param_groups[0]['lr']))

    def ema():
        with torch.no_grad():
            for tp, sp in zip(teacher.parameters(), net.parameters()):
                tp.data = momentum * tp.data + (1 - momentum) * sp.data

    with torch.enable_grad():
        for i in range(warmup_steps):
            for group in opt.param_groups:
                group['lr'] = lr * (i + 1) / warmup_steps
            xs_src, _ = next_source()
            loss = _sce(oracle(xs_src), teacher_fn(xs_src)).mean(0)
            loss.backward()
            opt.step()
            opt.zero_grad()
            ema()
        for group in opt.param_groups:
            group['lr'] = lr
    outputs = []
    for x in xs:
        with torch.enable_grad():
            f = oracle.features(x)
            z = _classifier(net)(f)
            x_aug = apply_view(x, draw_reference_view(gen, tuple(x.shape)))
            fa = oracle.features(x_aug)
            za = _classifier(net)(fa)
            t = teacher_fn(x)
            with torch.no_grad():
                sim = F.cosine_similarity(protos[:, None], f[None], dim=-1)  # (C, B)
                nearest = sim.topk(1, dim=0).indices.squeeze(0)
            loss_cont = _supcon(torch.stack([protos[nearest], f, fa], dim=1), projector, tau)
            loss_st = (0.5 * _sce(z, t) + 0.5 * _sce(za, t)).mean(0)
            loss = lambdas['trg'] * loss_st + lambdas['cont'] * loss_cont
            if lambdas['src'] > 0:
                xs_src, ys = next_source()
                loss = loss + lambdas['src'] * F.cross_entropy(oracle(xs_src), ys)
            loss.backward()
            opt.step()
            opt.zero_grad()
        ema()
        outputs.append((z + t).detach())
    return outputs, teacher, projector


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('source_free', [False, True])
def test_rmt_equals_the_reference_step(family, source_free):
    from stag_seg.methods import RMT
    lr, seed = 0.02, 5
    lambdas = dict(src=0.0 if source_free else 1.0, trg=1.0, cont=1.0)
    warmup = 0 if source_free else 3
    method = RMT(source_data=dict(dataloader=_source_loader()), seed=seed, projection_dim=16,
                 lambda_ce_src=lambdas['src'], warmup_samples=4 * warmup,
                 optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9,
                                                   nesterov=True, weight_decay=0.0)))
    tta, plain = _models(family, method)
    batches = [_batch(seed, 6) for seed in range(4)]
    scores, _ = _run_toolkit(tta, batches)
    oracle = Oracle(plain)
    logits, teacher, projector = _rmt_oracle(oracle, [oracle.pixels(b) for b in batches], lr,
                                             seed, warmup, lambdas, _source_loader())
    _assert_parity(tta, plain, scores, logits)
    for ours, theirs in [(method.teacher, teacher), (method.projector, projector)]:
        for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-9, msg=name)


def test_rmt_reset_returns_to_the_warmed_up_state_optimizer_included():
    from stag_seg.methods import RMT
    method = RMT(source_data=dict(dataloader=_source_loader()), seed=0, projection_dim=16,
                 warmup_samples=8,
                 optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9)))
    tta, plain = _models('bn_resnet', method)
    tta.tta_adapter.attach()
    warm = copy.deepcopy(tta.state_dict())
    momentum = copy.deepcopy(method.optim_wrapper.state_dict()['state'])
    assert momentum  # the warm-up stepped
    assert not torch.equal(warm['head.fc.weight'], plain.state_dict()['head.fc.weight'])
    teacher, projector = (copy.deepcopy(m.state_dict()) for m in (method.teacher,
                                                                   method.projector))
    _run_toolkit(tta, [_batch(0, 6), _batch(1, 6)])
    assert not torch.equal(tta.state_dict()['head.fc.weight'], warm['head.fc.weight'])
    method.reset(optimizer=True)
    for name, value in tta.state_dict().items():
        assert torch.equal(value, warm[name]), name
    for key, state in method.optim_wrapper.state_dict()['state'].items():
        assert torch.equal(state['momentum_buffer'], momentum[key]['momentum_buffer'])
    for module, saved in [(method.teacher, teacher), (method.projector, projector)]:
        for name, value in module.state_dict().items():
            assert torch.equal(value, saved[name]), name


def test_rmt_needs_source_images():
    from stag_seg.methods import RMT
    with pytest.raises(ValueError, match='RMT needs labelled source images'):
        RMT(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)), lambda_ce_src=0.0,
            warmup_samples=0)


# ------------------------------------------------------------------------------ ROID
def _slr(logits, clip=0.99, eps=1e-5):
    """mariodoebler's SoftLikelihoodRatio (utils/losses.py), per sample."""
    probs = torch.clamp(logits.softmax(1), 0, clip)
    return -(probs * torch.log(probs / (1 - probs) + eps)).sum(1)


def _roid_oracle(oracle: Oracle, xs, lr, seed, batch_size, temperature=1 / 3,
                 momentum_src=0.99, momentum_probs=0.9):
    """mariodoebler's ROID (roid.py __init__, configure_model, forward_and_adapt)."""
    net = oracle.net
    net.eval()
    net.requires_grad_(False)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.requires_grad_(True)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
            m.requires_grad_(True)
    _batch_stats_bn(net)
    opt = torch.optim.SGD(_norm_affine(net, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)),
                          lr=lr, momentum=0.9, nesterov=True, weight_decay=0.0)
    src = copy.deepcopy(net)
    for p in src.parameters():
        p.detach_()
    class_probs = torch.ones(NUM_CLS, dtype=torch.float64) / NUM_CLS
    gen = torch.Generator().manual_seed(seed)
    outputs = []

    def min_max(v):
        return (v - v.min()) / (v.max() - v.min())

    for x in xs:
        with torch.enable_grad():
            logits = oracle(x)
            with torch.no_grad():
                probs = logits.softmax(1)
                div = min_max(1 - F.cosine_similarity(class_probs[None], probs, dim=1))
                excluded = div < div.mean()
                cert = min_max(-_entropy(logits))
                weights = torch.exp(div * cert / temperature)
                weights[excluded] = 0
                class_probs = momentum_probs * class_probs + (1 - momentum_probs) * probs.mean(0)
            kept = ~excluded
            loss = (_slr(logits)[kept] * weights[kept]).sum() / batch_size
            view = apply_view(x[kept], draw_reference_view(gen, tuple(x[kept].shape),
                                                           blur=False, noise=False,
                                                           padding='reflect'))
            loss = loss + (_sce(oracle(view), logits[kept]) * weights[kept]).sum() / batch_size
            loss.backward()
            opt.step()
            opt.zero_grad()
        with torch.no_grad():
            for p, p_src in zip(net.parameters(), src.parameters()):
                if p.requires_grad:
                    p.data = momentum_src * p.data + (1 - momentum_src) * p_src.data
            mean = logits.softmax(1).mean(0)
            smooth = max(1 / logits.size(0), 1 / logits.size(1)) / torch.max(mean)
            prior = (mean + smooth) / (1 + smooth * logits.size(1))
            outputs.append(logits.detach() * prior)
    return outputs


@pytest.mark.parametrize('family', FAMILIES)
def test_roid_equals_the_reference_step(family):
    lr, seed, batch_size = 0.01, 7, 8
    method = dict(type='ROID', seed=seed, batch_size=batch_size,
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9,
                                                    nesterov=True, weight_decay=0.0)))
    tta, plain = _models(family, method)
    batches = [_batch(seed, 8) for seed in range(4)] + [_batch(9, 5)]  # a last, shorter one
    scores, stats = _run_toolkit(tta, batches)
    oracle = Oracle(plain)
    logits = _roid_oracle(oracle, [oracle.pixels(b) for b in batches], lr, seed, batch_size)
    _assert_parity(tta, plain, scores, logits)
    assert all(0 < s['roid_kept'] < 1 for s in stats)


def test_roid_prior_multiplies_the_logits_as_the_reference_does():
    """roid.py multiplies the logits by the smoothed prior: with negative logits a small prior
    raises a class's score, and the argmax differs from the probabilities' reading."""
    from stag_seg.methods.roid import prior_corrected
    logits = torch.tensor([[-1.0, -3.0, -0.5], [0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])
    corrected = prior_corrected(logits)
    mean = logits.softmax(1).mean(0)
    smooth = max(1 / 3, 1 / 3) / mean.max()
    prior = (mean + smooth) / (1 + 3 * smooth)
    torch.testing.assert_close(corrected, logits * prior)
    assert corrected[0].argmax() == 0 and (logits[0].softmax(0) * prior).argmax() == 2


@pytest.mark.parametrize('roid', [False, True])
def test_reference_views_are_torchvisions_chain_in_float64(roid):
    """The view of drawn parameters equals the reference transform's chain of torchvision
    operations (transforms_cotta.py: clip, the colour operations in the drawn order, gamma on
    the image clamped to [1e-8, 1], pad by half the size, affine, blur, centre crop, flip,
    noise, clip) to float64 precision; torchvision's hue shift computes in float32, and so does
    the view's."""
    TF = pytest.importorskip('torchvision.transforms.functional')
    from torchvision.transforms import InterpolationMode
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    ops = [lambda y, f: TF.adjust_brightness(y, f), lambda y, f: TF.adjust_contrast(y, f),
           lambda y, f: TF.adjust_saturation(y, f), lambda y, f: TF.adjust_hue(y, f),
           lambda y, f: TF.adjust_gamma(y.clamp(1e-8, 1.0), f)]
    for seed in range(4):
        p = draw_reference_view(torch.Generator().manual_seed(seed), tuple(x.shape),
                                blur=not roid, noise=not roid,
                                padding='reflect' if roid else 'edge')
        factors = [p.brightness, p.contrast, p.saturation, p.hue, p.gamma]
        y = x.clamp(0, 1)
        for i in p.order:
            y = ops[i](y, factors[i])
        y = TF.pad(y, 16, padding_mode=p.padding)
        y = TF.affine(y, angle=p.angle, translate=list(p.translate), scale=p.scale,
                      shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR, fill=0)
        if not roid:
            y = TF.gaussian_blur(y, 5, p.sigma)
        y = TF.center_crop(y, 32)
        if p.flip:
            y = TF.hflip(y)
        if not roid:
            y = y + p.noise.to(y)
        torch.testing.assert_close(apply_view(x, p), y.clamp(0, 1), rtol=0, atol=1e-12)


# ---------------------------------------------------------- STAG's weighting on each method
_ONES = dict(type='STAG', mode='reweight', reweight='threshold', threshold=-2.0)  # keeps all
_ZEROS = dict(type='STAG', mode='reweight', reweight='threshold', threshold=2.0)  # drops all
_REWEIGHTED = {
    'RoTTA': dict(type='RoTTA', memory_size=6, update_frequency=6, seed=3),
    'RMT': dict(type='RMT', seed=5, projection_dim=16, lambda_ce_src=0.0, warmup_samples=0),
    'ROID': dict(type='ROID', seed=7, batch_size=6),
}


@pytest.mark.parametrize('name', list(_REWEIGHTED))
def test_stags_weighting_reaches_each_continual_methods_per_sample_terms(name):
    """A multiplier of ones leaves every step exactly as it was; a multiplier of zeros removes
    exactly the per-sample terms (RoTTA's and ROID's whole loss; RMT's self-training, leaving
    its contrastive term)."""
    def run(regularizers):
        method = dict(_REWEIGHTED[name], regularizers=regularizers,
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9)))
        if name == 'RMT':
            method['source_data'] = dict(dataloader=_source_loader())
        tta, _ = _models('bn_resnet', method)
        scores, stats = _run_toolkit(tta, [_batch(seed, 6) for seed in range(3)])
        return tta, scores, stats

    plain, plain_scores, _ = run([])
    ones, ones_scores, ones_stats = run([_ONES])
    for a, b in zip(plain_scores, ones_scores):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for (key, a), b in zip(plain.state_dict().items(), ones.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    assert all(s['stag_multiplier'] == 1.0 for s in ones_stats if 'stag_multiplier' in s)
    _, _, zero_stats = run([_ZEROS])
    stepped = [s for s in zero_stats if 'stag_multiplier' in s]
    assert stepped and all(s['stag_multiplier'] == 0.0 for s in stepped)
    for s in stepped:
        expected = s['rmt_contrastive'] if name == 'RMT' else 0.0
        assert s['loss'] == pytest.approx(expected, abs=1e-12)
