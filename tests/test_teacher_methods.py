"""DAT and SVDP on the template: what each adapts, composes with, resets and refuses."""
import math

import pytest
import torch
from conftest import build_segmentor, make_batch, state_copy

from stag_seg.methods import build_method
from stag_seg.structures import step_stats

ADAM = dict(optimizer=dict(type='Adam', lr=1e-2, betas=(0.9, 0.999)))


def _dat(**kwargs):
    return build_segmentor(dict(type='DAT', fraction=0.05, high=0.3, low=0.35, **kwargs),
                           adapt_optim_wrapper=ADAM)


def test_dat_updates_only_the_tensors_it_selected_and_composes_with_stag():
    model = _dat(regularizers=[dict(type='STAG', anchors='live')])
    before = state_copy(model)
    stats = step_stats(model.test_step(make_batch(num=1)))
    # STAG's default weighting reaches both of DAT's losses
    assert math.isfinite(stats['loss']) and 0 < stats['second_stag_multiplier'] < 1
    assert 0 < stats['stag_multiplier'] < 1
    method = model.tta_method
    selected = method.selected_names()
    assert 0 < len(selected) <= 2 * int(len(method.units) * 0.05)
    params = dict(model.named_parameters())
    changed = {k for k, v in params.items() if not torch.equal(v, before[k])}
    owners = {n if n in params else n.rsplit('.', 2)[0] + '.in_proj_' + n.rsplit('.', 1)[1]
              for n in selected}
    assert changed and changed <= owners


def test_dat_window_selection_and_rate_follow_the_visits():
    model = _dat(window=1, round_lr_factor=0.5)
    method = model.tta_method
    model.test_step(make_batch(num=1, seed=0))
    first = method.selected_names()
    model.test_step(make_batch(num=1, seed=1))
    assert method.selected_names() == first  # past the window: nothing added
    method.begin_domain(2, 0)
    assert method.optim_wrapper.param_groups[0]['lr'] == pytest.approx(5e-3)
    model.test_step(make_batch(num=1, seed=2))
    assert len(method.selected_names()) <= int(len(method.units) * 0.05) * 2  # emptied, refilled
    state = method.extra_state()
    method.reset_state()
    assert method.selected_names() == []
    method.load_extra_state(state)
    assert method.optim_wrapper.param_groups[0]['lr'] == pytest.approx(5e-3)
    assert method.selected_names() and method._visit_step == 1


def test_dat_refuses_what_its_reference_does_not_have():
    with pytest.raises(TypeError, match='restore_prob'):
        build_method(dict(type='DAT', restore_prob=0.01), ADAM)
    with pytest.raises(ValueError, match='uncertainty_scales: 1.25'):
        build_method(dict(type='DAT', scales=(0.5, 1.0, 1.5)), ADAM)


def _svdp(**kwargs):
    from conftest import tiny_segmentor_cfg
    backbone = dict(type='SparsePromptedBackbone', backbone=tiny_segmentor_cfg()['backbone'],
                    prompt=dict(sparse_rate=0.01, input_size=(64, 64)))
    return build_segmentor(dict(type='SVDP', **kwargs), backbone=backbone,
                           adapt_optim_wrapper=ADAM)


def test_svdp_adapts_every_weight_but_not_the_prompt_and_composes_with_stag():
    model = _svdp(regularizers=[dict(type='STAG', anchors='live')])
    before = state_copy(model)
    stats = step_stats(model.test_step(make_batch(num=1)))
    assert math.isfinite(stats['loss']) and 0 < stats['stag_multiplier'] < 1
    assert stats['svdp_uncertainty'] > 0
    assert 'backbone.prompt.patch' not in model.tta_method.param_names
    assert torch.equal(model.backbone.prompt.patch, before['backbone.prompt.patch'])
    assert not torch.equal(model.decode_head.conv_seg.weight, before['decode_head.conv_seg.weight'])


def test_svdp_says_how_to_give_the_model_its_prompt_and_refuses_batches():
    model = build_segmentor(dict(type='SVDP'), adapt_optim_wrapper=ADAM)
    with pytest.raises(ValueError, match="type='SparsePromptedBackbone'"):
        model.test_step(make_batch(num=1))
    with pytest.raises(ValueError, match='batch size 1'):
        _svdp().test_step(make_batch(num=2))
