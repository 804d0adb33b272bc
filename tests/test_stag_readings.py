"""STAG's readings (cross-entropy gradient, entropy weighting, anchor temperature) against
autograd and their definitions."""
import math

import pytest
import torch
import torch.nn.functional as F

from stag_seg.stag import (STAG, compute_anchors, cross_entropy_grad, entropy, stag_cosine,
                           stag_loss)


def _classifier(num_classes=7, dim=11, seed=0):
    torch.manual_seed(seed)
    return (torch.randn(num_classes, dim, dtype=torch.float64) * 0.5,
            torch.randn(num_classes, dtype=torch.float64) * 0.3)


@pytest.mark.parametrize('temperature', [1.0, 0.6, 2.5])
def test_closed_form_cross_entropy_grad_equals_autograd(temperature):
    torch.manual_seed(3)
    logits = torch.randn(4, 9, 3, 2, dtype=torch.float64) * 3
    x = logits.clone().requires_grad_(True)
    target = logits.argmax(1)
    loss = F.cross_entropy(x / temperature, target, reduction='sum')
    (expected, ) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(cross_entropy_grad(logits, temperature), expected,
                               rtol=1e-10, atol=1e-15)
    other = (target + 1) % 9
    (expected, ) = torch.autograd.grad(
        F.cross_entropy(x / temperature, other, reduction='sum'), x)
    torch.testing.assert_close(cross_entropy_grad(logits, temperature, target=other), expected,
                               rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize('use_bias', [True, False])
def test_cross_entropy_anchor_is_the_autograd_gradient_towards_the_class_itself(use_bias):
    weight, bias = _classifier()
    weight[0] *= 0.05  # a weak class: its prototype is predicted as another class
    bias[1] = 2.0
    assert (weight @ weight[0] + bias).argmax() != 0
    anchors = compute_anchors(weight, bias, 0.8, use_bias, gradient='cross_entropy')
    for c in range(weight.size(0)):
        z = weight[c].clone().requires_grad_(True)
        logits = weight @ z + (bias if use_bias else 0)
        loss = F.cross_entropy(logits.unsqueeze(0) / 0.8, torch.tensor([c]))
        (grad, ) = torch.autograd.grad(loss, z)
        torch.testing.assert_close(anchors.features[c], grad, rtol=1e-10, atol=1e-14)


def test_cross_entropy_reading_in_feature_space_is_the_cosine_of_autograd_gradients():
    """Independent path: features z, dCE(y)/dz and the anchor by autograd, then the cosine."""
    weight, bias = _classifier()
    anchors = compute_anchors(weight, bias, gradient='cross_entropy')
    z = (torch.randn(40, 11, dtype=torch.float64) * 2).requires_grad_(True)
    logits = z @ weight.t() + bias
    pred = logits.detach().argmax(1)
    (grad, ) = torch.autograd.grad(F.cross_entropy(logits, pred, reduction='sum'), z)
    expected = F.cosine_similarity(grad, anchors.features[pred], dim=1)
    for form in ('gram', 'explicit'):
        cos, valid = stag_cosine(logits.detach(), weight, anchors, form=form,
                                 gradient='cross_entropy')
        assert valid.all()
        torch.testing.assert_close(cos, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('space', ['feature', 'logit', 'weight'])
def test_the_cross_entropy_readings_cosine_does_not_depend_on_the_confidence(space):
    """With the off-class distribution fixed, raising the predicted logit (the confidence)
    leaves the cross entropy's cosine unchanged; the entropy's changes."""
    weight, bias = _classifier(num_classes=5, dim=8, seed=4)
    z = torch.randn(1, 8, dtype=torch.float64)
    base = torch.randn(1, 5, dtype=torch.float64)
    base[0, 2] = base.max() + 0.5
    cosines = {}
    for gradient in ('cross_entropy', 'entropy'):
        anchors = compute_anchors(weight, bias, gradient=gradient)
        values = []
        for margin in (0.0, 2.0, 6.0):
            logits = base.clone()
            logits[0, 2] += margin
            cos, _ = stag_cosine(logits, weight, anchors, z, space=space, gradient=gradient)
            values.append(float(cos))
        cosines[gradient] = values
    assert max(cosines['cross_entropy']) - min(cosines['cross_entropy']) < 1e-12
    assert max(cosines['entropy']) - min(cosines['entropy']) > 1e-3


def test_entropy_weighting_multiplies_each_term_by_its_normalised_entropy():
    weight, bias = _classifier()
    anchors = compute_anchors(weight, bias)
    logits = torch.randn(3, 7, 4, 5, dtype=torch.float64) * 2
    mask = torch.rand(3, 4, 5) > 0.3
    plain, cos, used = stag_loss(logits, weight, anchors, mask=mask)
    weighted, _, _ = stag_loss(logits, weight, anchors, mask=mask, weighting='entropy')
    h = entropy(logits) / math.log(7)
    expected = (h * (1 - cos))[used].sum() / used.sum()
    torch.testing.assert_close(weighted, expected)
    assert float(weighted) < float(plain)
    # the weights are constants: the gradient is that of sum(h * (1 - cos)) with h fixed
    x = logits.clone().requires_grad_(True)
    stag_loss(x, weight, anchors, mask=mask, weighting='entropy')[0].backward()
    y = logits.clone().requires_grad_(True)
    cos_y, _ = stag_cosine(y, weight, anchors)
    ((h * (1 - cos_y))[used].sum() / used.sum()).backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_anchor_temperature_softens_the_prototypes_and_only_the_anchors():
    weight, bias = _classifier()
    weight = weight * 4  # a sharp classifier: q_c near one-hot
    reg = STAG(mode='loss', anchor_temperature=5.0)
    logits = torch.randn(6, 7, dtype=torch.float64) * 2
    loss, _ = reg(logits, weight, bias)
    expected = compute_anchors(weight, bias, 5.0)
    torch.testing.assert_close(reg.anchors.features, expected.features)
    plain, _, _ = stag_loss(logits, weight, expected, temperature=1.0, weighting=reg.weighting)
    torch.testing.assert_close(loss, reg.weight * plain)
    sharp = compute_anchors(weight, bias, 1.0)
    assert float(expected.entropy.mean()) > float(sharp.entropy.mean())


def test_the_readings_are_options_with_a_name_and_clear_errors():
    assert STAG.defaults()['gradient'] == 'entropy'
    assert STAG.defaults()['weighting'] == 'entropy'
    assert STAG.defaults()['anchor_temperature'] is None
    assert STAG(mode='loss', gradient='cross_entropy', weighting='none').name == \
        'STAG(gradient=cross_entropy, weighting=none, mode=loss)'
    assert STAG(anchor_temperature=4).name == 'STAG(anchor_temperature=4)'
    with pytest.raises(ValueError, match="STAG.gradient must be one of .* got 'ce'"):
        STAG(gradient='ce')
    with pytest.raises(ValueError, match="STAG.weighting must be one of"):
        STAG(weighting='confidence')
    with pytest.raises(ValueError, match='anchor_temperature must be > 0'):
        STAG(anchor_temperature=0)
