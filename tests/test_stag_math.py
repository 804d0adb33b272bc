"""STAG's closed forms against autograd, and its two forms against each other."""
import pytest
import torch
import torch.nn.functional as F

from stag_seg.stag import (STAG, compute_anchors, entropy, entropy_and_grad, entropy_grad,
                           stag_cosine, stag_loss)


def _autograd_entropy_grad(logits, temperature):
    x = logits.detach().clone().requires_grad_(True)
    ent = entropy(x, temperature, dim=1)
    (grad, ) = torch.autograd.grad(ent.sum(), x)
    return grad


@pytest.mark.parametrize('temperature', [1.0, 0.5, 2.7])
@pytest.mark.parametrize('shape', [(16, 10), (3, 7, 5, 4)])
def test_closed_form_entropy_grad_equals_autograd(temperature, shape):
    torch.manual_seed(0)
    logits = torch.randn(*shape, dtype=torch.float64) * 3
    expected = _autograd_entropy_grad(logits, temperature)
    torch.testing.assert_close(entropy_grad(logits, temperature), expected, rtol=1e-10, atol=0)


def test_entropy_matches_the_definition():
    torch.manual_seed(0)
    logits = torch.randn(8, 5, dtype=torch.float64)
    p = logits.softmax(1)
    torch.testing.assert_close(entropy(logits), -(p * p.log()).sum(1))


def test_entropy_grad_at_predicted_class_is_never_positive():
    torch.manual_seed(1)
    logits = torch.randn(2000, 19, dtype=torch.float64) * torch.rand(2000, 1) * 10
    _, grad = entropy_and_grad(logits)
    at_pred = grad.gather(1, logits.argmax(1, keepdim=True))
    assert (at_pred <= 0).all()


@pytest.mark.parametrize('use_bias', [True, False])
@pytest.mark.parametrize('temperature', [1.0, 0.7])
def test_anchor_equals_autograd_entropy_gradient_at_class_weight(use_bias, temperature):
    torch.manual_seed(2)
    num_classes, dim = 6, 9
    weight = torch.randn(num_classes, dim, dtype=torch.float64) * 0.4
    bias = torch.randn(num_classes, dtype=torch.float64)
    anchors = compute_anchors(weight, bias, temperature, use_bias)
    for c in range(num_classes):
        z = weight[c].clone().requires_grad_(True)
        logits = weight @ z + (bias if use_bias else 0)
        ent = entropy(logits.unsqueeze(0), temperature)
        (grad, ) = torch.autograd.grad(ent.sum(), z)
        torch.testing.assert_close(anchors.features[c], grad, rtol=1e-10, atol=1e-14)
        q = torch.softmax(logits.detach() / temperature, 0)
        torch.testing.assert_close(anchors.entropy[c], -(q * q.log()).sum())


def _explicit_feature_cos(logits, weight, anchors, temperature):
    """Independent path: autograd dH/dz through the linear classifier, then the cosine."""
    flat = logits.movedim(1, -1).reshape(-1, logits.size(1))
    # recover z by least squares is not needed: dH/dz = W^T dH/dl, take dH/dl from autograd
    s = _autograd_entropy_grad(flat, temperature)
    g = s @ weight
    a = anchors.features[flat.argmax(1)]
    return F.cosine_similarity(g, a, dim=1)


@pytest.mark.parametrize('shape', [(12, 8), (2, 8, 6, 5)])
@pytest.mark.parametrize('temperature', [1.0, 1.5])
def test_feature_cos_matches_autograd_path(shape, temperature):
    torch.manual_seed(3)
    weight = torch.randn(8, 16, dtype=torch.float64)
    logits = torch.randn(*shape, dtype=torch.float64) * 2
    anchors = compute_anchors(weight, torch.randn(8, dtype=torch.float64), temperature)
    cos, valid = stag_cosine(logits, weight, anchors, temperature=temperature)
    assert valid.all()
    expected = _explicit_feature_cos(logits, weight, anchors, temperature)
    torch.testing.assert_close(cos.reshape(-1), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('space', ['feature', 'logit', 'weight'])
@pytest.mark.parametrize('shape', [(32, 19), (2, 19, 9, 7)])
def test_gram_form_equals_explicit_form_with_mask_and_weights(space, shape):
    torch.manual_seed(4)
    num_classes, dim = shape[1], 24
    weight = torch.randn(num_classes, dim) * 0.3
    bias = torch.randn(num_classes) * 0.1
    features = torch.randn(shape[0], dim, *shape[2:])
    logits = (torch.einsum('nd...,cd->nc...', features, weight)
              + bias.view(-1, *[1] * (len(shape) - 2)))
    pos_shape = (shape[0], ) + shape[2:]
    mask = torch.rand(pos_shape) > 0.3
    weights = torch.rand(pos_shape) * 2
    anchors = compute_anchors(weight, bias)
    out = {}
    for form in ('gram', 'explicit'):
        loss, cos, used = stag_loss(logits, weight, anchors, features, mask, weights, space=space,
                                    form=form)
        out[form] = (loss, cos, used)
    torch.testing.assert_close(out['gram'][0], out['explicit'][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out['gram'][1], out['explicit'][1], rtol=1e-5, atol=1e-5)
    assert torch.equal(out['gram'][2], out['explicit'][2])
    # the mask is respected: unselected positions are never used
    assert not out['gram'][2][~mask].any()
    # the weights are respected: an independent weighted mean over the used positions
    used = out['gram'][2]
    expected = ((1 - out['explicit'][1]) * weights)[used].sum() / used.sum()
    torch.testing.assert_close(out['gram'][0], expected, rtol=1e-5, atol=1e-6)


def test_weight_space_cos_factorises_into_logit_and_feature_cosines():
    torch.manual_seed(5)
    weight, z = torch.randn(5, 7, dtype=torch.float64), torch.randn(10, 7, dtype=torch.float64)
    logits = z @ weight.t()
    anchors = compute_anchors(weight)
    cos_w, _ = stag_cosine(logits, weight, anchors, z, space='weight', form='explicit')
    cos_l, _ = stag_cosine(logits, weight, anchors, space='logit')
    pred = logits.argmax(1)
    torch.testing.assert_close(cos_w, cos_l * F.cosine_similarity(z, weight[pred], dim=1))


def test_per_sample_weights_broadcast_over_pixels():
    torch.manual_seed(6)
    weight = torch.randn(4, 6)
    logits = torch.randn(3, 4, 5, 5)
    anchors = compute_anchors(weight)
    per_sample = torch.tensor([0.0, 1.0, 3.0])
    loss_a, _, _ = stag_loss(logits, weight, anchors, weights=per_sample)
    loss_b, _, _ = stag_loss(logits, weight, anchors,
                             weights=per_sample.view(3, 1, 1).expand(3, 5, 5))
    torch.testing.assert_close(loss_a, loss_b)
    with pytest.raises(ValueError, match='weights must have shape'):
        stag_loss(logits, weight, anchors, weights=torch.ones(4))


@pytest.mark.parametrize('space', ['feature', 'logit', 'weight'])
@pytest.mark.parametrize('form', ['gram', 'explicit'])
def test_one_hot_logits_are_excluded_without_nan(space, form):
    torch.manual_seed(7)
    weight = torch.randn(5, 8, requires_grad=True)
    features = torch.randn(4, 8, 3, 3, requires_grad=True)
    logits = torch.einsum('ndhw,cd->nchw', features, weight)
    one_hot = torch.zeros(4, 5, 3, 3)
    one_hot[:, 2] = 1e4  # saturated softmax: dH/dl underflows to exactly zero
    logits = torch.where(torch.arange(4).view(4, 1, 1, 1) < 2, logits, logits * 0 + one_hot)
    reg = STAG(mode='loss', space=space, form=form)
    loss, stats = reg(logits, weight, None, features)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(weight.grad).all() and torch.isfinite(features.grad).all()
    assert stats['stag_used'] == pytest.approx(0.5)  # the two saturated samples are excluded


def test_all_positions_one_hot_gives_zero_loss_and_zero_gradient():
    logits = torch.full((2, 3, 4), -1e4)
    logits[:, 0] = 1e4
    logits.requires_grad_(True)
    weight = torch.randn(3, 5)
    loss, stats = STAG(mode='loss')(logits, weight)
    loss.backward()
    assert loss.item() == 0.0 and stats['stag_used'] == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_stag_loss_gradient_reaches_logits_and_matches_finite_differences():
    torch.manual_seed(8)
    weight = torch.randn(4, 6, dtype=torch.float64)
    anchors = compute_anchors(weight)
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def f(x):
        return stag_loss(x, weight, anchors)[0]

    assert torch.autograd.gradcheck(f, (logits, ), eps=1e-6, atol=1e-7)


def test_frozen_anchors_stay_and_live_anchors_follow_the_classifier():
    torch.manual_seed(9)
    weight = torch.randn(4, 6)
    logits = torch.randn(5, 4)
    frozen, live = STAG(mode='loss', anchors='frozen'), STAG(mode='loss', anchors='live')
    frozen(logits, weight)
    live(logits, weight)
    new_weight = weight + 1.0
    frozen(logits, new_weight)
    live(logits, new_weight)
    torch.testing.assert_close(frozen.anchors.weight, weight)
    torch.testing.assert_close(live.anchors.weight, new_weight)
    torch.testing.assert_close(live.anchors.features, compute_anchors(new_weight).features)


def test_gram_cache_is_refreshed_when_the_classifier_changes_in_place():
    torch.manual_seed(10)
    weight = torch.randn(4, 6)
    logits = torch.randn(5, 4)
    reg = STAG(mode='loss', anchors='frozen')
    first, _ = reg(logits, weight)
    with torch.no_grad():
        weight[0].mul_(-2.0)  # in place: same storage, new version
    second, _ = reg(logits, weight)
    # the same frozen anchors, no cache
    fresh = reg.weight * stag_loss(logits, weight, reg.anchors, weighting=reg.weighting)[0]
    torch.testing.assert_close(second, fresh)
    assert not torch.allclose(first, second)


@pytest.mark.parametrize('kwargs, match', [
    (dict(space='pixel'), 'STAG.space must be one of'),
    (dict(form='fast'), 'STAG.form must be one of'),
    (dict(anchors='moving'), 'STAG.anchors must be one of'),
    (dict(temperature=0), 'STAG.temperature must be > 0'),
    (dict(weight=-1), 'STAG.weight must be >= 0'),
])
def test_bad_options_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STAG(**kwargs)


def test_weight_space_without_features_is_a_clear_error():
    with pytest.raises(ValueError, match="space='weight' needs"):
        STAG(mode='loss', space='weight')(torch.randn(2, 3), torch.randn(3, 4))


def test_mismatched_classifier_shape_is_a_clear_error():
    with pytest.raises(ValueError, match='weight must be \\(C, D\\) with C = 3'):
        STAG(mode='loss')(torch.randn(2, 3), torch.randn(4, 4))


def test_gram_form_equals_the_autograd_double_backward_reference_in_value_and_gradient():
    from stag_reference import stag_loss_autograd
    torch.manual_seed(11)
    weight = torch.randn(6, 10, dtype=torch.float64)
    bias = torch.randn(6, dtype=torch.float64)
    anchors = compute_anchors(weight, bias)
    feats = torch.randn(2, 10, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 4, 3) > 0.2
    ref = stag_loss_autograd(feats, weight, bias, anchors, mask)
    (g_ref, ) = torch.autograd.grad(ref, feats)
    logits = torch.einsum('ndhw,cd->nchw', feats, weight) + bias.view(1, -1, 1, 1)
    loss, _, _ = stag_loss(logits, weight, anchors, mask=mask)
    (g_loss, ) = torch.autograd.grad(loss, feats)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_loss, g_ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize('temperature', [1.0, 0.6])
def test_logit_space_cos_matches_autograd_gradients(temperature):
    """cos(dH/dl at the sample, dH/dl at the predicted class's prototype), both by autograd."""
    torch.manual_seed(12)
    weight = torch.randn(5, 7, dtype=torch.float64)
    bias = torch.randn(5, dtype=torch.float64)
    logits = torch.randn(9, 5, dtype=torch.float64) * 2
    anchors = compute_anchors(weight, bias, temperature)
    cos, _ = stag_cosine(logits, weight, anchors, space='logit', temperature=temperature)
    s = _autograd_entropy_grad(logits, temperature)
    proto = _autograd_entropy_grad(weight @ weight.t() + bias, temperature)
    expected = F.cosine_similarity(s, proto[logits.argmax(1)], dim=1)
    torch.testing.assert_close(cos, expected, rtol=1e-10, atol=1e-12)


def test_stag_passes_temperature_and_use_bias_to_its_anchors():
    torch.manual_seed(13)
    weight, bias = torch.randn(4, 6), torch.randn(4)
    reg = STAG(mode='loss', temperature=0.5, use_bias=False)
    reg(torch.randn(3, 4), weight, bias)
    expected = compute_anchors(weight, bias, 0.5, use_bias=False)
    torch.testing.assert_close(reg.anchors.features, expected.features)
    other = compute_anchors(weight, bias, 1.0, use_bias=True)
    assert not torch.allclose(reg.anchors.features, other.features)


def test_stag_names_the_options_that_differ_from_the_defaults():
    assert STAG().name == 'STAG'
    assert STAG(mode='loss', space='logit', weight=4.0).name == \
        'STAG(weight=4, space=logit, mode=loss)'
    assert STAG(anchors='live', use_bias=False).name == 'STAG(use_bias=False, anchors=live)'
