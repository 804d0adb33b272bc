"""STAG's weighting reading (``mode='reweight'``): no loss term; the base method's per-position
terms are multiplied by a detached function of the alignment."""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import build_segmentor, make_batch, state_copy

from stag_seg.stag import STAG, alignment_multiplier, compute_anchors, entropy

SGD = dict(optimizer=dict(type='SGD', lr=0.5))


def test_the_multiplier_follows_its_definition_on_hand_worked_numbers():
    cos = torch.tensor([-1.0, -0.2, 0.0, 0.5, 1.0, 0.3])
    valid = torch.tensor([True, True, True, True, True, False])
    torch.testing.assert_close(alignment_multiplier(cos, valid, 'threshold'),
                               torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 1.0]))
    torch.testing.assert_close(alignment_multiplier(cos, valid, 'threshold', threshold=0.5),
                               torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    torch.testing.assert_close(alignment_multiplier(cos, valid, 'smooth'),
                               torch.tensor([0.0, 0.4, 0.5, 0.75, 1.0, 1.0]))
    torch.testing.assert_close(alignment_multiplier(cos, valid, 'smooth', power=2.0),
                               torch.tensor([0.0, 0.16, 0.25, 0.5625, 1.0, 1.0]))
    torch.testing.assert_close(alignment_multiplier(cos, valid, 'threshold+smooth'),
                               torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))
    with pytest.raises(ValueError, match="reweight must be one of"):
        alignment_multiplier(cos, valid, 'soft')


def _independent_cosine(logits, features, weight, bias):
    """cos(dH/dz, a_y) per position, by autograd for dH/dz and the anchors' definition."""
    z = features.detach().clone().requires_grad_(True)
    out = torch.einsum('ndhw,cd->nchw', z, weight) + bias.view(1, -1, 1, 1)
    (grad, ) = torch.autograd.grad(entropy(out, dim=1).sum(), z)
    anchors = compute_anchors(weight, bias)
    pred = logits.argmax(1)
    anchor = anchors.features[pred].movedim(-1, 1)
    return F.cosine_similarity(grad, anchor, dim=1, eps=1e-12)


def test_a_reweighted_tent_step_equals_the_reweighted_entropy_minimised_by_hand():
    tent = dict(type='Tent', regularizers=[dict(type='STAG', mode='reweight')],
                optim_wrapper=SGD)
    model = build_segmentor(tent)
    ref = build_segmentor()
    batch = make_batch(num=2)
    data = ref.data_preprocessor(copy.deepcopy(batch), False)
    model.test_step(copy.deepcopy(batch))
    # the same update by hand, on a copy of the source with Tent's configuration
    from stag_seg.methods import collect_norm_params, use_batch_statistics
    use_batch_statistics(ref)
    params, names = collect_norm_params(ref)
    optim = torch.optim.SGD(params, lr=0.5)
    captured = {}
    handle = ref.decode_head.conv_seg.register_forward_hook(
        lambda m, a, o: captured.update(z=a[0], logits=o))
    ref.decode_head.forward(ref.extract_feat(data['inputs']))
    handle.remove()
    logits, z = captured['logits'], captured['z']
    conv = ref.decode_head.conv_seg
    cos = _independent_cosine(logits.detach(), z, conv.weight.detach().flatten(1),
                              conv.bias.detach())
    multiplier = ((1 + cos) / 2).detach()
    loss = (entropy(logits, dim=1) * multiplier).mean()
    optim.zero_grad()
    loss.backward()
    optim.step()
    adapted = dict(model.named_parameters())
    for name, p in zip(names, params):
        torch.testing.assert_close(adapted[name].detach(), p.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('method', [
    dict(type='Tent'), dict(type='Tent', loss='pseudo_label'), dict(type='EATA'),
    dict(type='SAR'), dict(type='DeYO', patch_len=2), dict(type='CoTTA', scales=(1.0, )),
    dict(type='Tent', resolution='original'),
    dict(type='DAT', fraction=0.05, high=0.3, low=0.35, scales=(1.0, 1.25), flip=False,
         uncertainty_scales=(1.0, 1.25)),
], ids=lambda m: m['type'] + ('-pl' if m.get('loss') else '')
   + ('-original' if m.get('resolution') else ''))
def test_a_multiplier_of_ones_leaves_every_method_step_exactly_as_it_was(method):
    """threshold=-2 keeps every position (cosines are >= -1): the reweighted loss must be the
    method's own, so that the reweighting path changes nothing but the multiplier."""
    plain = build_segmentor(dict(method, optim_wrapper=SGD))
    ones = build_segmentor(dict(method, optim_wrapper=SGD, regularizers=[
        dict(type='STAG', mode='reweight', reweight='threshold', threshold=-2.0)]))
    for seed in range(2):
        batch = make_batch(num=2, seed=seed, size=(64, 64))
        a = plain.test_step(copy.deepcopy(batch))[0].seg_logits.data
        b = ones.test_step(copy.deepcopy(batch))[0].seg_logits.data
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for (name, x), y in zip(state_copy(plain).items(), state_copy(ones).values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_both_readings_together_are_the_reweighted_loss_plus_the_stag_term():
    stag = dict(type='STAG', weight=0.5, mode='loss+reweight', reweight='smooth')
    both = build_segmentor(dict(type='Tent', regularizers=[stag], optim_wrapper=SGD))
    reweight_only = build_segmentor(dict(type='Tent', optim_wrapper=SGD, regularizers=[
        dict(stag, mode='reweight')]))
    batch = make_batch(num=2)
    stats_both = both.test_step(copy.deepcopy(batch))[0].metainfo['adapt_stats']
    stats_rw = reweight_only.test_step(copy.deepcopy(batch))[0].metainfo['adapt_stats']
    # same reweighted base loss; the total adds 0.5 * the STAG loss term
    assert stats_both['loss'] == pytest.approx(stats_rw['loss'] + 0.5 * stats_both['stag_loss'],
                                               rel=1e-5)
    assert 'stag_loss' not in stats_rw and 'stag_multiplier' in stats_rw


def test_a_loss_without_per_position_terms_cannot_be_reweighted():
    from stag_seg.methods import Tent
    from stag_seg.registry import TTA_METHODS

    @TTA_METHODS.register_module(name='ScalarLossTent', force=True)
    class ScalarLossTent(Tent):  # a method whose loss keeps no per-position terms
        def loss(self, out, ctx):
            return dataclasses.replace(super().loss(out, ctx), reweight=None)

    model = build_segmentor(dict(type='ScalarLossTent', optim_wrapper=SGD,
                                 regularizers=[dict(type='STAG', mode='reweight')]))
    with pytest.raises(TypeError, match='no per-position terms to reweight'):
        model.test_step(make_batch(num=1))


def test_the_reading_names_itself_by_what_differs_from_the_defaults():
    assert STAG(mode='reweight').name == 'STAG'  # the default reading
    assert STAG(reweight='threshold', threshold=0.2).name == \
        'STAG(reweight=threshold, threshold=0.2)'
    assert STAG(mode='loss').name == 'STAG(mode=loss)'
    # the reweighting's options mean nothing in the loss reading
    assert STAG(mode='loss', reweight='threshold').name == 'STAG(mode=loss)'
    with pytest.raises(ValueError, match="STAG.mode must be one of"):
        STAG(mode='weights')


@pytest.mark.parametrize('method', [
    dict(type='Tent', resolution='original'),
    dict(type='Tent', resolution='original', loss='pseudo_label'),
    dict(type='DAT', fraction=0.05, high=0.3, low=0.35, scales=(1.0, 1.25), flip=False,
         uncertainty_scales=(1.0, 1.25)),
], ids=['Tent-original', 'Tent-pl-original', 'DAT'])
def test_a_multiplier_of_zeros_removes_every_term_of_the_loss(method):
    """threshold=2 drops every position: the reweighted loss, taken at another resolution
    (Tent's scored size) or in two parts (DAT's), is zero."""
    model = build_segmentor(dict(method, optim_wrapper=SGD, regularizers=[
        dict(type='STAG', mode='reweight', reweight='threshold', threshold=2.0)]))
    stats = model.test_step(make_batch(num=2, size=(64, 64)))[0].metainfo['adapt_stats']
    assert stats['stag_multiplier'] == 0.0
    assert stats['loss'] == 0.0
    if method['type'] == 'DAT':
        assert stats['second_loss'] == 0.0 and stats['second_stag_multiplier'] == 0.0


def test_the_loss_terms_options_are_refused_without_the_loss_term():
    """weight and weighting only act on the loss term: given to the default (weighting)
    reading they would be ignored, so STAG says what to write instead."""
    with pytest.raises(ValueError, match=r"weight=4.0 set the loss term.*mode='loss'"):
        STAG(weight=4.0)
    with pytest.raises(ValueError, match=r"weighting='none' set the loss term"):
        STAG(mode='reweight', weighting='none')
    assert STAG(mode='loss', weight=4.0).weight == 4.0
    assert STAG(mode='loss+reweight', weighting='none').weighting == 'none'
