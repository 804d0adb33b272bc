"""The measurements behind the choice of STAG's reading, against finite differences and facts."""
import math
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F

#: The project (its ``stag_study`` package) and the repository (the configs' paths start there).
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(osp.dirname(PROJECT))
sys.path.insert(0, PROJECT)

from stag_seg.stag import entropy  # noqa: E402
from stag_study.analysis import (anchor_sharpness, collapse_curve,  # noqa: E402
                                 descent_cosines, reading_loss)

READINGS = [dict(space='feature'), dict(space='logit'), dict(space='weight'),
            dict(space='feature', gradient='cross_entropy'),
            dict(space='logit', gradient='cross_entropy'),
            dict(space='feature', weighting='entropy'),
            dict(space='feature', anchor_temperature=4.0)]


def _classifier(seed=0, num_classes=5, dim=6):
    torch.manual_seed(seed)
    weight = torch.randn(num_classes, dim, dtype=torch.float64)
    bias = torch.randn(num_classes, dtype=torch.float64) * 0.2
    features = torch.randn(30, dim, dtype=torch.float64) * 1.5
    return weight, bias, features, features @ weight.t() + bias


@pytest.mark.parametrize('reading', READINGS[:5], ids=lambda r: '-'.join(map(str, r.values())))
def test_descent_cosines_match_finite_differences(reading):
    weight, bias, features, logits = _classifier()
    logits, features = logits[:3], features[:3]
    stats = descent_cosines(logits, weight, bias, features, **reading)
    # central differences of the loss and of the summed entropy, one logit at a time
    h = 1e-6
    cosines = []
    for i in range(3):
        g_loss, g_ent = torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
        for k in range(5):
            up, down = logits.clone(), logits.clone()
            up[i, k] += h
            down[i, k] -= h
            g_loss[k] = (reading_loss(up, weight, bias, features, **reading)[0]
                         - reading_loss(down, weight, bias, features, **reading)[0]) / (2 * h)
            g_ent[k] = (entropy(up).sum() - entropy(down).sum()) / (2 * h)
        cosines.append(float(F.cosine_similarity(g_loss, g_ent, dim=0)))
    expected = sorted(cosines)
    assert stats['positions'] == 3
    assert stats['median'] == pytest.approx(expected[1], abs=1e-5)
    assert stats['positive'] == pytest.approx(sum(c > 0 for c in cosines) / 3)


def test_entropy_weighting_rescales_positions_but_turns_none():
    weight, bias, features, logits = _classifier(seed=1)
    plain = descent_cosines(logits, weight, bias, **READINGS[0])
    weighted = descent_cosines(logits, weight, bias, **READINGS[5])
    for key in ('positive', 'q25', 'median', 'q75'):
        assert weighted[key] == pytest.approx(plain[key], abs=1e-9)
    assert abs(weighted['batch'] - plain['batch']) > 1e-3


@pytest.mark.parametrize('reading', READINGS[:6], ids=lambda r: '-'.join(map(str, r.values())))
def test_every_position_at_one_prototype_is_a_global_minimum(reading):
    """1 - cos >= 0 and it is 0 where the feature is the class's weight: the anchor is taken
    there. So a model that maps everything onto one prototype minimises every such reading."""
    weight, bias, features, logits = _classifier(seed=2)
    curve = collapse_curve(logits, weight, bias, features, shifts=(0.0, 4.0, 64.0), **reading)
    assert curve['at_prototype'] == pytest.approx(0.0, abs=1e-12)
    assert min(curve['loss']) >= 0
    assert curve['predicted'][0] < 1.0 and curve['predicted'][-1] == 1.0


def test_with_an_anchor_temperature_the_prototype_is_no_longer_a_minimum():
    """The anchor is the gradient at the prototype under tau_a, the positions' under tau."""
    weight, bias, features, logits = _classifier(seed=2)
    curve = collapse_curve(logits, weight, bias, features, **READINGS[6])
    assert curve['at_prototype'] > 1e-3


def test_anchor_sharpness_follows_the_softmax_of_the_prototype_logits():
    weight, bias, _, _ = _classifier(seed=3, num_classes=10, dim=32)
    weight = weight * 2
    rows = anchor_sharpness(weight, bias, temperatures=(1.0, 4.0, 1e9))
    logits = weight @ weight.t() + bias
    q = torch.softmax(logits, 1)
    assert rows[0]['max_q_mean'] == pytest.approx(float(q.max(1).values.mean()))
    assert rows[0]['own_class'] == pytest.approx(float((q.argmax(1) == torch.arange(10))
                                                       .double().mean()))
    assert rows[0]['max_q_mean'] > rows[1]['max_q_mean'] > rows[2]['max_q_mean']
    assert rows[2]['max_q_mean'] == pytest.approx(0.1, abs=1e-6)
    assert rows[2]['entropy_norm_mean'] == pytest.approx(1.0, abs=1e-6)
    assert rows[1]['entropy_norm_mean'] == pytest.approx(
        float((entropy(logits, 4.0) / math.log(10)).mean()))
