"""TTAEncoderDecoder, the classifier tap and the Source/Norm/Tent methods."""
import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import NUM_CLASSES, build_segmentor, make_batch, state_copy
from torch import nn

from stag_seg.methods import Tent, collect_norm_params, norm_layers
from stag_seg.models import ClassifierTap, tap_decode_head
from stag_seg.stag import STAG, entropy
from stag_seg.structures import NotAdaptableError, step_stats


def _preprocessed(model, batch):
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    return data['inputs'], data['data_samples']


def _norm_param_names(model):
    return set(collect_norm_params(model)[1])


def test_tap_records_the_decode_head_classifier_and_nothing_outside_a_capture():
    model = build_segmentor()
    inputs, samples = _preprocessed(model, make_batch())
    tap = tap_decode_head(model)
    with torch.no_grad():
        with tap.capture():
            feats = model.extract_feat(inputs)
            logits = model.decode_head.forward(feats)
        out = tap.output()
        torch.testing.assert_close(out.logits, logits)
        conv = model.decode_head.conv_seg
        torch.testing.assert_close(out.logits, conv(out.features))
        assert out.weight.shape == (NUM_CLASSES, 16) and out.bias.shape == (NUM_CLASSES, )
        model.decode_head.forward(feats)  # outside the capture: not recorded
    assert len(tap._records) == 1
    assert not conv._forward_hooks


def test_tap_joins_slide_crops_per_image():
    model = build_segmentor(test_cfg=dict(mode='slide', crop_size=(32, 32), stride=(32, 32)))
    inputs, samples = _preprocessed(model, make_batch(num=2, size=(64, 64)))
    tap = tap_decode_head(model)
    with torch.no_grad(), tap.capture():
        model.inference(inputs, [dict(s.metainfo) for s in samples])
    out = tap.output()
    assert out.logits.shape == (2, NUM_CLASSES, 4 * 8 * 8)  # 4 crops of 8x8 logits each


def test_tap_rejects_heads_without_conv_seg_and_non_linear_layers():
    model = build_segmentor()
    del model.decode_head.conv_seg
    with pytest.raises(NotAdaptableError, match='has no conv_seg layer'):
        tap_decode_head(model)
    with pytest.raises(TypeError, match='1x1 ungrouped Conv2d'):
        ClassifierTap(nn.Conv2d(4, 4, 3))


def test_source_leaves_every_parameter_and_buffer_bit_identical():
    model = build_segmentor(dict(type='Source'))
    before = state_copy(model)
    plain = build_segmentor()
    for seed in range(3):
        batch = make_batch(seed=seed)
        out = model.test_step(copy.deepcopy(batch))
        ref = plain.test_step(copy.deepcopy(batch))
        torch.testing.assert_close(out[0].seg_logits.data, ref[0].seg_logits.data, rtol=0, atol=0)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_norm_uses_test_batch_statistics_and_changes_nothing():
    model = build_segmentor(dict(type='Norm'))
    before = state_copy(model)
    batch = make_batch(num=2)
    out = model.test_step(copy.deepcopy(batch))
    # independent path: the same network with its BatchNorm layers in train mode on a copy
    ref = build_segmentor()
    for _, m in norm_layers(ref):
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    inputs, samples = _preprocessed(ref, batch)
    with torch.no_grad():
        expected = ref.inference(inputs, [dict(s.metainfo) for s in samples])
    torch.testing.assert_close(out[0].seg_logits.data,
                               F.interpolate(expected, size=(64, 64), mode='bilinear')[0]
                               if expected.shape[-1] != 64 else expected[0])
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize('loss', ['entropy', 'pseudo_label'])
def test_tent_changes_only_norm_layer_affine_parameters(loss):
    model = build_segmentor(dict(type='Tent', loss=loss), optim_lr=0.5)
    before = state_copy(model)
    norm_names = _norm_param_names(model)
    for seed in range(2):
        model.test_step(make_batch(seed=seed))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed, 'Tent did not update anything'
    assert changed <= norm_names, changed - norm_names
    # both LayerNorm (backbone) and BatchNorm (head) parameters move
    kinds = {type(dict(model.named_modules())[k.rsplit('.', 1)[0]]) for k in changed}
    assert nn.LayerNorm in kinds and nn.BatchNorm2d in kinds


def test_prediction_is_made_before_the_update_with_one_forward():
    model = build_segmentor(dict(type='Tent'), optim_lr=0.5)
    ref = build_segmentor()  # same seed: same source weights
    calls = []
    model.decode_head.conv_seg.register_forward_hook(lambda *a: calls.append(1))
    source = state_copy(model)
    for seed in range(3):
        batch = make_batch(seed=seed)
        ref.load_state_dict(model.state_dict())
        for _, m in norm_layers(ref):
            if isinstance(m, nn.BatchNorm2d):
                m.train()
                m.track_running_stats = False
        inputs, samples = _preprocessed(ref, batch)
        with torch.no_grad():
            expected = ref.inference(inputs, [dict(s.metainfo) for s in samples])
        out = model.test_step(copy.deepcopy(batch))
        torch.testing.assert_close(out[0].seg_logits.data, expected[0])
    assert len(calls) == 3  # one classifier call per step: prediction and update share it
    assert any(not torch.equal(v, source[k]) for k, v in model.state_dict().items())


def test_regularized_step_runs_one_backward_with_the_summed_gradient(monkeypatch):
    lam = 2.5
    model = build_segmentor(dict(type='Tent', regularizers=[dict(type='STAG', mode='loss',
                                                                weight=lam)]),
                            optim_lr=0.1)
    ref = build_segmentor()
    batch = make_batch(num=2)

    # expected: d(L_tent)/dp + lam * d(L_stag)/dp by autograd on an independent copy
    for _, m in norm_layers(ref):
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False
    params, names = collect_norm_params(ref)
    inputs, samples = _preprocessed(ref, batch)
    tap = tap_decode_head(ref)
    with tap.capture():
        ref.inference(inputs, [dict(s.metainfo) for s in samples])
    out = tap.output()
    base = entropy(out.logits).mean()
    stag_loss, _ = STAG(weight=1.0, mode='loss')(out.logits, out.weight, out.bias,
                                                 out.features)
    g_base = torch.autograd.grad(base, params, retain_graph=True, allow_unused=True)
    g_stag = torch.autograd.grad(stag_loss, params, allow_unused=True)
    expected = {n: (a if a is not None else 0) + lam * (b if b is not None else 0)
                for n, a, b in zip(names, g_base, g_stag)}

    backward_calls, seen = [], {}
    real_backward = torch.Tensor.backward

    def counting_backward(self, *args, **kwargs):
        backward_calls.append(1)
        return real_backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, 'backward', counting_backward)
    model.test_step(copy.deepcopy(batch))  # configures on the first step, then adapts
    assert len(backward_calls) == 1
    optimizer = model.tta_method.optim_wrapper.optimizer

    def grab(*args, **kwargs):
        for name, p in zip(model.tta_method.param_names, optimizer.param_groups[0]['params']):
            seen[name] = p.grad.detach().clone()

    model.tta_method.reset()
    monkeypatch.setattr(optimizer, 'step', grab)
    model.test_step(copy.deepcopy(batch))
    assert len(backward_calls) == 2
    assert set(seen) == set(expected)
    assert any(float(g.abs().sum()) > 0 for g in seen.values())
    for name in names:  # float32 sums in another order: 1e-4 fails with one thread
        torch.testing.assert_close(seen[name], expected[name], rtol=1e-3, atol=1e-6)


def test_episodic_reset_restores_the_source_exactly():
    cfg = dict(type='Tent', regularizers=[dict(type='STAG')],
               optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.05)))
    model = build_segmentor(cfg)
    source = state_copy(model)
    for seed in range(3):
        model.test_step(make_batch(seed=seed))
    assert any(not torch.equal(v, source[k]) for k, v in model.state_dict().items())
    assert model.tta_method.optim_wrapper.optimizer.state  # Adam's moments
    model.tta_method.reset()
    for key, value in model.state_dict().items():
        assert torch.equal(value, source[key]), key
    assert not model.tta_method.optim_wrapper.optimizer.state
    first = model.test_step(make_batch(seed=0))
    fresh = build_segmentor(cfg)
    torch.testing.assert_close(first[0].seg_logits.data,
                               fresh.test_step(make_batch(seed=0))[0].seg_logits.data)


def test_release_undoes_what_configure_changed():
    model = build_segmentor(dict(type='Tent'))
    modes = {n: m.training for n, m in model.named_modules()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    model.test_step(make_batch())
    bn = [m for _, m in norm_layers(model) if isinstance(m, nn.BatchNorm2d)]
    assert all(m.training and not m.track_running_stats for m in bn)
    model.eval()  # what the runner does: the method's layers stay in train mode
    assert all(m.training for m in bn)
    model.tta_method.release()
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert all(m.track_running_stats for m in bn)


def test_tent_loss_values_follow_their_definitions():
    torch.manual_seed(0)
    logits = torch.randn(2, NUM_CLASSES, 5, 5)
    from stag_seg.models import TapOutput
    out = TapOutput(logits, torch.randn(NUM_CLASSES, 3), None, torch.randn(2, 3, 5, 5))
    opt = dict(optimizer=dict(type='SGD', lr=1.0))
    ent = Tent(loss='entropy', optim_wrapper=opt).loss(out, None).loss
    p = logits.softmax(1)
    torch.testing.assert_close(ent, -(p * p.log()).sum(1).mean())
    pl = Tent(loss='pseudo_label', optim_wrapper=opt).loss(out, None).loss
    torch.testing.assert_close(pl, -p.log().max(1).values.mean())


def test_padding_is_excluded_from_the_method_loss_and_from_stag():
    preprocessor = dict(type='SegDataPreProcessor', mean=[120.0] * 3, std=[60.0] * 3,
                        test_cfg=dict(size=(64, 64)), pad_val=0, seg_pad_val=255)
    model = build_segmentor(dict(type='Tent', regularizers=[dict(type='STAG', mode='loss')]),
                            data_preprocessor=preprocessor)
    batch = make_batch(num=2, size=(48, 40))  # padded to 64x64: logits 16x16, content 12x10
    seen = {}
    original = model.tta_method.loss
    model.tta_method.loss = lambda out, ctx: (seen.setdefault('out', out), original(out, ctx))[1]
    out = model.test_step(batch)
    assert out[0].pred_sem_seg.shape == (48, 40)
    tapped = seen['out']
    valid = tapped.valid
    assert valid.shape == (2, 16, 16)
    assert valid[:, :12, :10].all()
    assert not valid[:, 12:].any() and not valid[:, :, 10:].any()
    # the loss is the entropy averaged over the content only, not over the padding
    ent = entropy(tapped.logits.detach())
    stats = step_stats(out)
    masked, unmasked = float(ent[valid].mean()), float(ent.mean())
    assert abs(masked - unmasked) > 1e-4 * masked  # the two are told apart below
    assert stats['tent_entropy'] == pytest.approx(masked, rel=1e-6)
    # STAG reuses the method's mask: it used exactly the content positions
    assert stats['stag_used'] == pytest.approx(float(valid.float().mean()))


def test_reconfiguring_takes_fresh_anchors_from_the_new_source():
    model = build_segmentor(dict(type='Tent', regularizers=[dict(type='STAG')]))
    model.test_step(make_batch())
    stag = model.tta_method.regularizers[0]
    first = stag.anchors.weight.clone()
    model.tta_method.release()
    with torch.no_grad():
        model.decode_head.conv_seg.weight.mul_(2.0)
    model.tta_method.configure(model)
    model.test_step(make_batch())
    torch.testing.assert_close(stag.anchors.weight, first * 2.0)


@pytest.mark.parametrize('cfg, error, match', [
    (dict(type='Tent', loss='ce'), ValueError, "tta_method.loss must be 'entropy' or "
                                                "'pseudo_label', got 'ce'"),
    (dict(type='Tnet'), KeyError, 'tta_method.type must be one of'),
    (dict(type='Source', regularizers=[dict(type='STAG')]), ValueError,
     'Source does not update the model, so regularizers would have no effect'),
    (dict(type='Norm', optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))), ValueError,
     'Norm does not update the model, so an optim_wrapper'),
    (dict(type='Tent', regularizers=[dict(type='STAGG')]), KeyError, 'STAGG'),
])
def test_bad_method_configs_are_clear_errors(cfg, error, match):
    with pytest.raises(error, match=match):
        build_segmentor(cfg)


def test_a_checkpoint_with_another_number_of_classes_is_refused():
    model = build_segmentor(dict(type='Source'))
    other = build_segmentor(dict(type='Source'), num_classes=NUM_CLASSES + 3)
    with pytest.raises(ValueError, match=r"decode_head.conv_seg.weight has 7 classes, the "
                                         r"model's classifier 4: set num_classes=7"):
        model.load_state_dict(other.state_dict(), strict=False)


def test_any_shape_mismatch_is_refused_even_when_loading_non_strictly():
    from mmengine.runner.checkpoint import load_state_dict
    model = build_segmentor(dict(type='Source'))
    state = model.state_dict()
    state['decode_head.fusion_conv.conv.weight'] = torch.zeros(16, 32, 1, 1)
    with pytest.raises(ValueError, match=r'1 tensors differ in shape: decode_head.fusion_conv'
                                         r'.conv.weight: checkpoint \(16, 32, 1, 1\) vs model '
                                         r'\(16, 64, 1, 1\)'):
        load_state_dict(model, state, strict=False)  # what MMEngine's runner calls
