"""EATA, SAR, DeYO and CoTTA: what each adapts, selects, weighs, resets and restores."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import build_segmentor, make_batch, state_copy
from torch import nn

from stag_seg.methods.step import sam_ascend, sam_descend, sam_update
from stag_seg.methods import (EATA, SAR, CoTTA, DeYO, collect_norm_params, patch_shuffle,
                              shuffle_patches_per_sample, unshuffle_patches)
from stag_seg.structures import StepContext, TapOutput, step_stats
from stag_seg.stag import entropy

OPT = dict(optimizer=dict(type='SGD', lr=0.5))


def _out(logits, valid=None):
    c = logits.size(1)
    feats = torch.randn(logits.size(0), 3, *logits.shape[2:])
    return TapOutput(logits, torch.randn(c, 3), None, feats, valid)


@pytest.mark.parametrize('cfg, scope', [
    (dict(type='EATA', e0=2.0), 'norm'),
    (dict(type='SAR', e0=2.0), 'norm'),
    (dict(type='DeYO', margin=2.0, plpd_threshold=-2.0), 'norm'),
    (dict(type='CoTTA'), 'all'),
])
def test_each_method_updates_the_parameters_it_should(cfg, scope):
    model = build_segmentor(cfg, optim_lr=0.5)
    before = state_copy(model)
    norm = set(collect_norm_params(model)[1])
    for seed in range(2):
        model.test_step(make_batch(seed=seed))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed
    if scope == 'norm':
        assert changed <= norm
    else:  # every parameter is trainable, so more than the norm layers move
        assert changed - norm and set(model.tta_method.param_names) == {
            n for n, _ in model.named_parameters()}


@pytest.mark.parametrize('cfg', [
    dict(type='Tent'), dict(type='EATA', e0=2.0), dict(type='SAR', e0=2.0),
    dict(type='DeYO', margin=2.0, plpd_threshold=-2.0), dict(type='CoTTA')])
@pytest.mark.parametrize('mode', ['reweight', 'loss'])
def test_stag_composes_with_every_method(cfg, mode):
    anchors = 'live' if cfg['type'] == 'CoTTA' else 'frozen'
    model = build_segmentor(dict(cfg, regularizers=[dict(type='STAG', anchors=anchors,
                                                         mode=mode)]), optim_lr=0.5)
    before = state_copy(model)
    stats = step_stats(model.test_step(make_batch()))
    assert math.isfinite(stats['loss']) and stats['skipped'] == 0
    if mode == 'loss':
        assert math.isfinite(stats['stag_loss']) and stats['stag_used'] > 0
    else:  # the multiplier of the method's terms: (1 + cos) / 2, below 1 somewhere
        assert 0 < stats['stag_multiplier'] < 1 and 'stag_loss' not in stats
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_stag_rides_on_both_sam_steps():
    model = build_segmentor(dict(type='SAR', e0=2.0, regularizers=[dict(type='STAG',
                                                                          mode='loss',
                                                                          weight=5.0)]))
    assert step_stats(model.test_step(make_batch()))['sam2_stag_used'] > 0
    model = build_segmentor(dict(type='SAR', e0=2.0, regularizers=[dict(type='STAG')]))
    assert 0 < step_stats(model.test_step(make_batch()))['sam2_stag_multiplier'] < 1


# ------------------------------------------------------------------------------------- EATA
def test_eata_selects_exactly_the_pixels_below_the_margin_and_weighs_them():
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 6, 6) * torch.linspace(0.1, 6, 36).view(1, 1, 6, 6)
    method = EATA(optim_wrapper=OPT)
    res = method.loss(_out(logits), None)
    ent = entropy(logits)
    e0 = 0.4 * math.log(5)
    assert torch.equal(res.mask, ent < e0)
    assert 0 < int(res.mask.sum()) < 36
    torch.testing.assert_close(res.weights, torch.exp(e0 - ent))
    torch.testing.assert_close(res.loss, (ent * torch.exp(e0 - ent))[ent < e0].mean())


def test_eata_filters_images_redundant_with_the_moving_average():
    logits = torch.zeros(1, 4, 2, 2)
    logits[:, 0] = 6.0  # confident class 0 everywhere
    method = EATA(optim_wrapper=OPT, d_margin=0.5)
    first = method.loss(_out(logits), None)
    assert first.mask.all()  # nothing to compare with yet: kept, and it sets the average
    second = method.loss(_out(logits.clone()), None)
    assert not second.mask.any() and second.skip  # |cos| = 1 >= 0.5: redundant
    other = torch.zeros(1, 4, 2, 2)
    other[:, 2] = 6.0
    third = method.loss(_out(other), None)
    assert third.mask.all()  # a different distribution (cos ~ 0) is kept
    # p_bar <- 0.9 p_bar + 0.1 mean(p): the average moved towards class 2
    assert method.moving_probs[2] > method.moving_probs[1]


def test_eata_fisher_matches_an_independent_estimate_and_its_penalty_is_eqn_9(tiny_tree):
    import stag_seg  # noqa: F401
    fisher_data = dict(num_images=2, dataloader=dict(
        batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ACDCDataset', data_root=tiny_tree, condition='fog',
                     pipeline=[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')])))
    model = build_segmentor(dict(type='EATA', e0=3.0, fisher_data=fisher_data,
                                 fisher_alpha=1e3), num_classes=19)
    ref = copy.deepcopy(model)
    model.test_step(make_batch(size=(32, 64)))  # configures: the Fisher is estimated here
    method = model.tta_method
    assert len(method.fisher) == len(method.param_names)
    # independent: per image, grad of CE against its own argmax, squared, averaged
    from mmengine.runner import Runner
    from stag_seg.methods import use_batch_statistics
    use_batch_statistics(ref)
    params = dict(ref.named_parameters())
    loader = Runner.build_dataloader(fisher_data['dataloader'])
    expected = {n: torch.zeros_like(params[n]) for n in method.param_names}
    for i, batch in enumerate(loader):
        if i == 2:
            break
        data = ref.data_preprocessor(batch, False)
        logits = ref.decode_head.forward(ref.extract_feat(data['inputs']))
        loss = F.cross_entropy(logits, logits.argmax(1))
        grads = torch.autograd.grad(loss, [params[n] for n in method.param_names],
                                    allow_unused=True)
        for n, g in zip(method.param_names, grads):
            if g is not None:
                expected[n] += g.pow(2) / 2
    for n, (fisher, source) in zip(method.param_names, method.fisher):
        torch.testing.assert_close(fisher, expected[n], rtol=1e-4, atol=1e-10)
    # Eqn. 9: after theta = theta_0 + delta (theta_0 from the untouched source copy), the
    # penalty is alpha * sum_i F_i * delta_i^2. No pixel is valid, so the entropy term is 0 and
    # the loss is the penalty alone.
    adapted = dict(model.named_parameters())
    deltas = {n: torch.full_like(params[n], 0.05 * (k + 1))
              for k, n in enumerate(method.param_names)}
    with torch.no_grad():
        for n in method.param_names:
            adapted[n].copy_(params[n] + deltas[n])
    penalty = sum(float((fisher.double() * deltas[n].double().pow(2)).sum())
                  for n, (fisher, _) in zip(method.param_names, method.fisher))
    assert penalty > 0
    logits = torch.randn(1, 19, 4, 4)
    res = method.loss(_out(logits, valid=torch.zeros(1, 4, 4, dtype=torch.bool)), None)
    assert res.stats['eata_fisher'] == pytest.approx(penalty, rel=1e-5)
    assert float(res.loss.detach()) == pytest.approx(1e3 * penalty, rel=1e-5)


@pytest.mark.parametrize('num_images, indices, match', [
    (0, None, 'EATA.fisher_data.num_images must be >= 1, got 0'),
    (5, 0, 'EATA.fisher_data yielded no images'),
])
def test_eata_refuses_an_empty_fisher_set(tiny_tree, num_images, indices, match):
    dataset = dict(type='ACDCDataset', data_root=tiny_tree, condition='fog',
                   pipeline=[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')])
    if indices is not None:
        dataset.update(indices=indices, serialize_data=False)
    cfg = dict(type='EATA', fisher_data=dict(num_images=num_images, dataloader=dict(
        batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset)))
    model = build_segmentor(cfg, num_classes=19)
    with pytest.raises(ValueError, match=match):
        model.test_step(make_batch())


# -------------------------------------------------------------------------------------- SAR
def test_sam_restores_the_weights_before_the_descent_step():
    """The step equals SGD with the gradient taken at w + rho g/|g| (computed independently)."""
    torch.manual_seed(0)
    layer = nn.Linear(3, 4)
    x = torch.randn(5, 3)
    w0 = [p.detach().clone() for p in layer.parameters()]

    def loss_at(params):
        return entropy(F.linear(x, *params)).mean()

    wr = [p.clone().requires_grad_() for p in w0]
    grads = torch.autograd.grad(loss_at(wr), wr)
    norm = torch.sqrt(sum((gr ** 2).sum() for gr in grads))
    rho, lr = 0.05, 0.1
    perturbed = [(p + rho * gr / norm).requires_grad_() for p, gr in zip(w0, grads)]
    grads2 = torch.autograd.grad(loss_at(perturbed), perturbed)
    expected = [p - lr * gr for p, gr in zip(w0, grads2)]

    from stag_seg.methods.base import _build_optim_wrapper
    method = SAR(e0=2.0, rho=rho, optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)))
    method.optim_wrapper = _build_optim_wrapper(list(layer.parameters()),
                                                method.optim_wrapper_cfg)

    class Tap:
        def __init__(self):
            self.records = []

        def capture(self):
            import contextlib
            return contextlib.nullcontext()

        def output(self):
            logits = F.linear(x, layer.weight, layer.bias)
            return TapOutput(logits, layer.weight, layer.bias, x)

    ctx = StepContext(x, layer, lambda m, inp: F.linear(inp, m.weight, m.bias), Tap())
    first_out = ctx.forward()
    first = method.loss(first_out, ctx)
    seen = {}
    real_step = method.optim_wrapper.optimizer.step

    def step(*a, **k):  # the weights the base optimizer starts from
        seen['w'] = [p.detach().clone() for p in layer.parameters()]
        return real_step(*a, **k)

    method.optim_wrapper.optimizer.step = step
    sam_update(method, ctx, first.loss, first)
    for a, b in zip(seen['w'], w0):
        assert torch.equal(a, b)  # restored exactly before the descent
    for p, e in zip(layer.parameters(), expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-7)


def test_sam_ascend_and_descend_are_exact_inverses():
    params = [nn.Parameter(torch.randn(3, 2)), nn.Parameter(torch.randn(4))]
    for p in params:
        p.grad = torch.randn_like(p)
    before = [p.detach().clone() for p in params]
    saved = sam_ascend(params, 0.05)
    moved = torch.cat([(p - b).flatten() for p, b in zip(params, before)])
    assert torch.linalg.vector_norm(moved).item() == pytest.approx(0.05, rel=1e-5)
    sam_descend(params, saved)
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_sar_resets_to_the_source_under_a_constructed_collapse():
    model = build_segmentor(dict(type='SAR', e0=2.0, reset_threshold=0.2), optim_lr=0.5)
    source = state_copy(model)
    model.test_step(make_batch(seed=0))
    method = model.tta_method
    assert method.num_resets == 0
    assert any(not torch.equal(v, source[k]) for k, v in model.state_dict().items())
    # a collapsed model has near-zero entropy: the average of the second loss drops under 0.2
    method.ema = 0.01
    stats = step_stats(model.test_step(make_batch(seed=1)))
    assert method.num_resets == 1
    assert stats['sar_reset'] == 1.0
    for key, value in model.state_dict().items():
        assert torch.equal(value, source[key]), key
    # the low average is kept, as the reference does, so the next steps may reset again
    assert method.ema == pytest.approx(0.9 * 0.01 + 0.1 * stats['sam2_loss'])


def test_sar_does_not_reset_a_healthy_stream():
    model = build_segmentor(dict(type='SAR', e0=2.0), optim_lr=0.01)
    for seed in range(3):
        model.test_step(make_batch(seed=seed))
    assert model.tta_method.num_resets == 0 and model.tta_method.ema > 0.2


# ------------------------------------------------------------------------------------- DeYO
def test_patch_shuffle_is_undone_exactly():
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).view(2, 3, 8, 12)
    gen = torch.Generator().manual_seed(0)
    shuffled, perm = patch_shuffle(x, 4, gen)
    assert not torch.equal(shuffled, x)
    assert torch.equal(unshuffle_patches(shuffled, perm, 4), x)
    # patch i of the output is patch perm[i] of the input
    assert torch.equal(shuffled[..., :2, :3], x[..., (perm[0] // 4) * 2:(perm[0] // 4) * 2 + 2,
                                                 (perm[0] % 4) * 3:(perm[0] % 4) * 3 + 3])


def test_deyo_plpd_is_zero_for_local_predictions_and_exact_for_positional_ones():
    method = DeYO(optim_wrapper=OPT, patch_len=2)
    x = torch.randn(1, 3, 8, 8)
    local = StepContext(x, None, lambda m, inp: F.avg_pool2d(inp, 2) * 3)  # 4x4 logit map
    logits = local.logits_fn(None, x)
    plpd = method.plpd(logits, local)
    assert plpd.shape == (1, 4, 4)
    torch.testing.assert_close(plpd, torch.zeros_like(plpd), atol=1e-6, rtol=0)
    # a prediction that also depends on the position: PLPD = p(x) - p(moved content)
    ramp = torch.zeros(1, 3, 4, 4)
    ramp[:, 0] = torch.linspace(-2, 2, 16).view(4, 4)  # class 0 favoured by position

    def positional(m, inp):
        return F.avg_pool2d(inp, 2) * 3 + ramp

    ctx = StepContext(x, None, positional)
    method.generator.manual_seed(5)
    plpd = method.plpd(positional(None, x), ctx)
    gen = torch.Generator().manual_seed(5)
    x_aug, perm = patch_shuffle(x, 2, gen)
    aug = unshuffle_patches(positional(None, x_aug), perm, 2).softmax(1)
    probs = positional(None, x).softmax(1)
    pred = probs.argmax(1, keepdim=True)
    expected = (probs.gather(1, pred) - aug.gather(1, pred)).squeeze(1)
    torch.testing.assert_close(plpd, expected)
    assert plpd.abs().max() > 1e-3


def test_deyo_selects_by_entropy_and_plpd_and_weighs_by_both():
    method = DeYO(optim_wrapper=OPT, patch_len=2, plpd_threshold=0.2)
    x = torch.randn(1, 3, 8, 8)
    logits = torch.randn(1, 5, 4, 4) * 4
    plpd = torch.linspace(-0.5, 0.9, 16).view(1, 4, 4)
    method.plpd = lambda lg, ctx, candidates=None: plpd
    res = method.loss(_out(logits), StepContext(x, None, None))
    ent = entropy(logits)
    expected_mask = (ent < 0.5 * math.log(5)) & (plpd > 0.2)
    assert torch.equal(res.mask, expected_mask) and expected_mask.any()
    torch.testing.assert_close(res.weights, torch.exp(0.4 * math.log(5) - ent) + torch.exp(plpd))


def test_deyo_shuffles_each_image_on_its_own():
    x = torch.arange(3 * 1 * 4 * 4, dtype=torch.float32).view(3, 1, 4, 4).repeat(1, 2, 1, 1)
    gen = torch.Generator().manual_seed(0)
    out = shuffle_patches_per_sample(x, 2, gen)
    for i in range(3):  # every image keeps its own patches (2x2 blocks), reordered
        blocks = lambda t: sorted(t[0, a:a + 2, b:b + 2].flatten().tolist()  # noqa: E731
                                  for a in (0, 2) for b in (0, 2))
        assert blocks(out[i]) == blocks(x[i])
        assert torch.equal(out[i, 0], out[i, 1])  # channels move together
    offsets = {tuple((out[i, 0, ::2, ::2] - 16 * i).flatten().tolist()) for i in range(3)}
    assert len(offsets) > 1  # not one permutation for the batch
    gen.manual_seed(0)
    assert torch.equal(shuffle_patches_per_sample(x, 2, gen), out)


def test_deyo_forwards_the_view_of_entropy_candidates_only_for_classifiers():
    """As in the reference: only samples that pass the entropy filter are shuffled and
    forwarded; the others get PLPD -1 and are never selected."""
    method = DeYO(optim_wrapper=OPT, patch_len=2, plpd_threshold=-0.5)
    seen = []

    def logits_fn(model, inp):
        seen.append(inp.shape[0])
        return inp.mean((2, 3)) * 0  # uniform on the view: PLPD = p_y(x) - 1/C

    x = torch.randn(4, 3, 8, 8)
    logits = torch.tensor([[9.0, 0, 0], [0, 0, 0], [0, 9.0, 0], [0.1, 0, 0]])
    res = method.loss(_out(logits), StepContext(x, None, logits_fn))
    candidates = entropy(logits) < 0.5 * math.log(3)
    assert candidates.tolist() == [True, False, True, False]
    assert seen == [2]
    assert res.mask.tolist() == [True, False, True, False]
    plpd = method.plpd(logits, StepContext(x, None, logits_fn), candidates)
    probs = logits.softmax(1).max(1).values
    torch.testing.assert_close(plpd[candidates], probs[candidates] - 1 / 3)
    assert (plpd[~candidates] == -1).all()
    seen.clear()
    none = method.plpd(logits, StepContext(x, None, logits_fn), torch.zeros(4, dtype=torch.bool))
    assert seen == [] and (none == -1).all()


# ------------------------------------------------------------------------------------ CoTTA
def test_cotta_restore_probability_zero_changes_nothing_and_one_restores_everything():
    for prob, expect_source in ((0.0, False), (1.0, True)):
        model = build_segmentor(dict(type='CoTTA', restore_prob=prob, alpha=0.5), optim_lr=0.5)
        source = state_copy(model)
        method = model.tta_method
        seen = {}
        real_restore = method._restore

        def restore():
            seen['before'] = state_copy(model)
            real_restore()

        method._restore = restore
        model.test_step(make_batch())
        after = model.state_dict()
        if expect_source:
            for name, _ in model.named_parameters():
                assert torch.equal(after[name], source[name]), name
        else:
            assert 'before' not in seen  # p = 0: no restore pass at all
            assert any(not torch.equal(after[n], source[n]) for n, _ in model.named_parameters())


def test_cotta_teacher_is_the_exponential_moving_average_of_the_student():
    model = build_segmentor(dict(type='CoTTA', restore_prob=0.0, alpha=0.9), optim_lr=0.5)
    model.test_step(make_batch(seed=0))
    method = model.tta_method
    teacher_before = {n: p.clone() for n, p in method.teacher.named_parameters()}
    model.test_step(make_batch(seed=1))
    student = dict(model.named_parameters())
    for name, t in method.teacher.named_parameters():
        torch.testing.assert_close(t, 0.9 * teacher_before[name] + 0.1 * student[name].detach())


def test_cotta_reports_the_teachers_label_and_trains_the_student_on_it():
    model = build_segmentor(dict(type='CoTTA', scales=(1.0, ), flip=False, confidence=2.0),
                            optim_lr=0.0)
    batch = make_batch(seed=3)
    teacher = copy.deepcopy(model)  # the teacher starts as the source
    data = teacher.data_preprocessor(copy.deepcopy(batch), False)
    with torch.no_grad():
        logits = teacher.decode_head.forward(teacher.extract_feat(data['inputs']))
        expected = F.interpolate(logits, size=(64, 64), mode='bilinear').argmax(1)
    out = model.test_step(batch)
    assert torch.equal(out[0].pred_sem_seg.data[0], expected[0])
    assert step_stats(out)['cotta_confident'] == 0.0  # nobody beats 2.0


# ---------------------------------------------------- CoTTA, the classification reading
CLS_CLASSES = 3


def _classifier(tta_method, seed=0):
    """A tiny mmpretrain ResNet classifier (about 0.2M parameters) that adapts itself."""
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(
        type='TTAImageClassifier', tta_method=tta_method, adapt_optim_wrapper=OPT,
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=CLS_CLASSES,
                               to_rgb=True, mean=[127.5] * 3, std=[64.0] * 3),
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=CLS_CLASSES, in_channels=64)))
    with torch.no_grad():  # BN statistics unlike the test data's, as after training elsewhere
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
    model.eval()
    return model


def _cls_batch(num=4, size=32, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
                        for _ in range(num)],
                data_samples=[DataSample().set_gt_label(i % CLS_CLASSES) for i in range(num)])


def _cotta_cls_config():
    from conftest import ROOT
    from mmengine.config import Config
    cfg = dict(Config.fromfile(f'{ROOT}/configs/_base_/tta/cotta-cls.py').tta_method)
    cfg.pop('_delete_')
    return cfg


@pytest.mark.parametrize('label', ['soft', 'symmetric'])
def test_cotta_soft_labels_give_the_soft_cross_entropy_and_its_gradient(label):
    torch.manual_seed(0)
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5) * 2
    method = CoTTA(optim_wrapper=OPT, label=label)
    ctx = StepContext(None, None, None, state=dict(
        cotta_label=teacher.argmax(1), cotta_probs=teacher.softmax(1), cotta_confident=0.0))
    loss = method.loss(_out(student), ctx).loss
    forward = -(teacher.softmax(1) * student.log_softmax(1)).sum(1)
    if label == 'soft':
        torch.testing.assert_close(loss, forward.mean())
        (grad, ) = torch.autograd.grad(loss, student)
        torch.testing.assert_close(grad, (student.softmax(1) - teacher.softmax(1)) / 4)
    else:  # the ImageNet code's: the mean of both directions
        reverse = -(student.softmax(1) * teacher.log_softmax(1)).sum(1)
        torch.testing.assert_close(loss, (0.5 * forward + 0.5 * reverse).mean())


def test_cotta_batch_mean_mode_decides_once_for_the_whole_batch(monkeypatch):
    """Anchor max probabilities 0.95, 0.34, 0.36 (mean 0.55) and 0.95, 0.9, 0.4 (0.75)."""
    standard = torch.tensor([[0.8, 0.1, 0.1]]).repeat(3, 1)
    averaged = standard.flip(1)

    def anchor_logits(p):  # max probability p on class 0
        p = torch.tensor(p)
        return torch.stack([p.log(), ((1 - p) / 2).log(), ((1 - p) / 2).log()], 1)

    def run(mode, probs):
        method = CoTTA(optim_wrapper=OPT, confidence=0.6, confidence_mode=mode)
        method.configure(nn.Linear(2, 3))
        monkeypatch.setattr(method, '_teacher_views', lambda ctx, size: (standard, averaged))
        ctx = StepContext(torch.zeros(3, 2), None, lambda m, x: anchor_logits(probs))
        method.prepare(ctx)
        used = method.prediction(_out(torch.zeros(3, 3)), ctx).exp()
        return [bool(torch.allclose(row, avg)) for row, avg in zip(used, averaged)]

    # one decision: views for the confident first sample too, and for none when the mean
    # clears the threshold, the unconfident third sample included
    assert run('batch_mean', [0.95, 0.34, 0.36]) == [True, True, True]
    assert run('batch_mean', [0.95, 0.9, 0.4]) == [False, False, False]
    assert run('element', [0.95, 0.34, 0.36]) == [False, True, True]
    assert run('element', [0.95, 0.9, 0.4]) == [False, False, True]


def test_cotta_random_views_are_seeded_clipped_and_shaped():
    x = None

    def views(seed, count=3):
        nonlocal x
        model = _classifier(dict(type='CoTTA', views='random', seed=seed))
        model.tta_method.configure(model, logits_fn=None)
        if x is None:
            x = model.data_preprocessor(_cls_batch(seed=1), False)['inputs']
        return model.tta_method, [model.tta_method.random_view(x) for _ in range(count)]

    method, first = views(3)
    (_, again), (_, other) = views(3), views(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(not torch.allclose(a, b) for a, b in zip(first, other))
    assert not torch.allclose(first[0], first[1])  # each view draws anew
    low, high = (0 - 127.5) / 64, (255 - 127.5) / 64  # pixels clipped to [0, 255]
    for view in first:
        assert view.shape == x.shape and view.dtype == x.dtype
        assert view.min() >= low - 1e-5 and view.max() <= high + 1e-5
    # on a white image the noise pushes about half the pixels over the top: clipped there
    white = method.random_view(torch.full_like(x, high))
    assert white.max() <= high + 1e-5
    assert torch.isclose(white, torch.tensor(high)).float().mean() > 0.2


@pytest.mark.parametrize('confidence, teacher_calls', [(1.1, 1 + 5), (0.0, 1)])
def test_cotta_random_views_cost_num_views_teacher_forwards_when_used(monkeypatch, confidence,
                                                                       teacher_calls):
    from stag_seg.models import adapter as steps
    model = _classifier(dict(type='CoTTA', views='random', num_views=5, confidence=confidence,
                             confidence_mode='batch_mean', label='soft'))
    calls = []
    real = steps.classifier_logits

    def counting(m, inputs):
        calls.append((m, inputs))
        return real(m, inputs)

    monkeypatch.setattr(steps, 'classifier_logits', counting)
    stats = step_stats(model.test_step(_cls_batch()))
    method = model.tta_method
    on_teacher = [x for m, x in calls if m is method.teacher]
    assert len(on_teacher) == teacher_calls  # the plain input, then one forward per view
    assert len([m for m, _ in calls if m is method.anchor]) == 1
    assert all(x.shape == (4, 3, 32, 32) for x in on_teacher)
    assert stats['cotta_confident'] == (0.0 if confidence > 1 else 1.0)


def test_cotta_views_match_torchvision_pad_affine_blur_crop():
    """The warp equals edge padding by half the size, affine, blur and centre crop."""
    TF = pytest.importorskip('torchvision.transforms.functional')
    from torchvision.transforms import InterpolationMode

    from stag_seg.methods.augment import shift_hue, warp
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    for angle, shift, scale, sigma in [(10.0, (3, -2), 1.05, 0.3), (-14.0, (-4, 4), 0.92, 0.45)]:
        padded = TF.pad(x, 16, padding_mode='edge')
        expected = TF.affine(padded, angle=angle, translate=list(shift), scale=scale,
                             shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR)
        expected = TF.center_crop(TF.gaussian_blur(expected, 5, sigma), 32)
        torch.testing.assert_close(warp(x, angle, shift, scale, sigma), expected, rtol=0,
                                   atol=1e-5)
    for shift in (-0.06, 0.05, 0.5):
        torch.testing.assert_close(shift_hue(x, shift), TF.adjust_hue(x, shift), rtol=0,
                                   atol=1e-5)


@pytest.mark.parametrize('stag', [False, True])
def test_cotta_classification_reading_adapts_a_classifier(stag):
    cfg = dict(_cotta_cls_config(), num_views=4, confidence=1.1,  # views on every batch
               optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)))
    if stag:
        cfg['regularizers'] = [dict(type='STAG', anchors='live')]
    model = _classifier(cfg)
    source = state_copy(model)
    for seed in range(3):
        preds = model.test_step(_cls_batch(seed=seed))
    method = model.tta_method
    assert (method.confidence_mode, method.label, method.views) == (
        'batch_mean', 'symmetric', 'random')
    stats = step_stats(preds)
    assert stats['skipped'] == 0 and math.isfinite(stats['loss'])
    assert stats['cotta_confident'] == 0.0
    if stag:
        assert 0 < stats['stag_multiplier'] < 1
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, source[n])]
    assert len(changed) > len(collect_norm_params(model)[1])  # more than the norm layers
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in method.teacher.parameters())
    # the reported scores are the teacher's, a distribution per sample
    scores = torch.stack([s.pred_score for s in preds])
    torch.testing.assert_close(scores.sum(1), torch.ones(4))


def test_cotta_batch_statistics_reach_the_teacher_and_the_anchor():
    model = _classifier(dict(type='CoTTA', batch_stats=True, views='random'))
    model.test_step(_cls_batch())
    method = model.tta_method
    for copy_ in (method.teacher, method.anchor):
        bns = [m for m in copy_.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and all(m.training and not m.track_running_stats for m in bns)


def test_cotta_resume_replays_the_same_random_views():
    model = _classifier(dict(type='CoTTA', views='random', num_views=2, confidence=1.1))
    model.test_step(_cls_batch(seed=0))
    method = model.tta_method
    state = copy.deepcopy(method.extra_state())
    x = model.data_preprocessor(_cls_batch(seed=1), False)['inputs']
    expected = [method.random_view(x) for _ in range(2)]
    method.load_extra_state(state)
    assert all(torch.equal(method.random_view(x), e) for e in expected)
    method.reset()  # back to the seed, not to the saved point
    assert not torch.equal(method.random_view(x), expected[0])


def test_cotta_refuses_random_views_on_a_segmentor():
    model = build_segmentor(dict(type='CoTTA', views='random'))
    with pytest.raises(ValueError, match="CoTTA.views='random' needs a classifier's"):
        model.test_step(make_batch())


@pytest.mark.parametrize('cfg, error, match', [
    (dict(type='EATA', d_margin=0.0), ValueError, 'EATA.d_margin must be > 0'),
    (dict(type='EATA', fisher_data=dict(num_images=3)), KeyError, "needs a 'dataloader'"),
    (dict(type='SAR', rho=0.0), ValueError, 'SAR.rho must be > 0'),
    (dict(type='DeYO', aug='occlusion'), ValueError, 'DeYO.aug must be one of'),
    (dict(type='CoTTA', alpha=1.5), ValueError, 'CoTTA.alpha must be in'),
    (dict(type='CoTTA', scales=()), ValueError, 'CoTTA.scales must be positive'),
    (dict(type='CoTTA', label='ce'), ValueError, 'CoTTA.label must be one of'),
    (dict(type='CoTTA', confidence_mode='pixel'), ValueError, 'CoTTA.confidence_mode must be'),
    (dict(type='CoTTA', views='tta'), ValueError, 'CoTTA.views must be one of'),
    (dict(type='CoTTA', num_views=0), ValueError, 'CoTTA.num_views must be >= 1'),
])
def test_bad_method_options_are_clear_errors(cfg, error, match):
    from stag_seg.methods import build_method
    with pytest.raises(error, match=match):
        build_method(cfg, OPT)


# ------------------------------------------------------------------------- several ranks
class _TwoRanks:
    """Stands in for a second process: ``all_reduce`` combines with ``other``'s values.

    The other rank agrees on every flag but the skip flag (the third ``min`` of a step, after
    "logits finite" and "loss finite"), where it says ``other_skips``.
    """

    def __init__(self, other_skips, other_loss=None):
        self.other_skips, self.other_loss, self.calls, self.mins = other_skips, other_loss, [], 0

    def __call__(self, data, op='sum'):
        self.calls.append(op)
        if op == 'min':
            self.mins += 1
            if self.mins == 3:
                data.copy_(torch.minimum(data, torch.tensor([float(self.other_skips)])))
        elif op == 'sum':  # SAR's (loss, defined) pair
            data.add_(torch.tensor([self.other_loss, 1.0], dtype=data.dtype))


@pytest.mark.parametrize('other_skips, grad_syncs', [(False, 1), (True, 0)])
def test_a_rank_without_selection_still_joins_a_step_the_others_take(monkeypatch, other_skips,
                                                                      grad_syncs):
    from stag_seg import dist
    ranks = _TwoRanks(other_skips)
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dist, 'all_reduce', ranks)
    model = build_segmentor(dict(type='EATA', e0=1e-9))  # nothing is below the margin here
    assert step_stats(model.test_step(make_batch(seed=0)))['skipped'] == float(other_skips)
    # the gradient average (and the check that it is finite) is entered by every rank, or
    # by none
    assert ranks.calls == ['min'] * 3 + ['mean', 'min'] * grad_syncs


def test_sar_averages_its_reset_signal_over_ranks(monkeypatch):
    from stag_seg import dist
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    # the other rank has collapsed: its second loss is 0
    monkeypatch.setattr(dist, 'all_reduce', _TwoRanks(False, other_loss=0.0))
    model = build_segmentor(dict(type='SAR', e0=2.0))
    stats = step_stats(model.test_step(make_batch(seed=0)))
    method = model.tta_method
    # the first average is the mean of this rank's second loss and the other's 0
    assert method.ema == pytest.approx(stats['sam2_loss'] / 2)
