"""The signals of the diagnostic and their AUROC, on numbers worked out by hand."""
import importlib.util
import math
import os.path as osp
import sys

import pytest
import torch

#: The project (its ``stag_study`` package) and the repository (the tools' paths start there).
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(osp.dirname(PROJECT))
sys.path.insert(0, PROJECT)

from stag_seg.stag import compute_anchors, stag_cosine  # noqa: E402
from stag_study.signals import auroc, position_signals, residual, roc_curve  # noqa: E402


def test_auroc_counts_correct_over_wrong_pairs_and_ties_half():
    # correct {0.35, 0.8} against wrong {0.1, 0.4}: 3 of the 4 pairs ordered right
    assert auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]),
                 torch.tensor([False, False, True, True])) == pytest.approx(0.75)
    # a tie between a correct and a wrong position counts half: (0.5 + 1 + 1 + 1) / 4
    assert auroc(torch.tensor([0.5, 0.5, 0.2, 0.9]),
                 torch.tensor([True, False, False, True])) == pytest.approx(0.875)
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([True, False])) == 0.0  # the wrong way
    assert math.isnan(auroc(torch.tensor([1.0, 2.0]), torch.tensor([True, True])))


def test_the_roc_curve_ends_at_one_and_its_area_is_the_auroc():
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(500, generator=gen)
    correct = torch.rand(500, generator=gen) < scores  # informative
    fpr, tpr = roc_curve(scores, correct)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    area = float(torch.trapezoid(tpr, fpr))
    assert area == pytest.approx(auroc(scores, correct), abs=1e-9)


def test_the_residual_has_no_linear_dependence_left_on_the_confidence():
    gen = torch.Generator().manual_seed(1)
    conf = torch.rand(300, generator=gen, dtype=torch.float64)
    noise = torch.randn(300, generator=gen, dtype=torch.float64)
    signal = 2.0 * conf + 0.5 + 0.1 * noise
    res = residual(signal, conf)
    assert float((res * conf).sum()) == pytest.approx(0.0, abs=1e-9)
    assert float(res.sum()) == pytest.approx(0.0, abs=1e-9)
    # a signal that is the confidence has nothing left beyond it
    assert float(residual(conf, conf).abs().max()) < 1e-12


def test_position_signals_are_the_toolkit_cosines_per_position():
    gen = torch.Generator().manual_seed(2)
    weight, bias = torch.randn(5, 8, generator=gen), torch.randn(5, generator=gen)
    features = torch.randn(4, 8, 3, 3, generator=gen)
    logits = torch.einsum('ndhw,cd->nchw', features, weight) + bias.view(1, -1, 1, 1)
    signals = position_signals(logits, weight, bias, features)
    assert signals['max_softmax'].shape == (36, )
    cos, _ = stag_cosine(logits.double(), weight.double(),
                         compute_anchors(weight.double(), bias.double()), features.double(),
                         space='logit')
    torch.testing.assert_close(signals['cos/logit/entropy'], cos.flatten())
    torch.testing.assert_close(signals['neg_entropy'],
                               (logits.double().softmax(1) * logits.double().log_softmax(1))
                               .sum(1).flatten())


def test_the_tool_tables_its_document():
    spec = importlib.util.spec_from_file_location(
        'analyze_signal', osp.join(PROJECT, 'tools', 'analyze_signal.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    doc = dict(cells=[dict(benchmark='digits-c', model='gn', stage='source', domain='fog',
                           n=10, accuracy=70.0, auroc={'cos/logit/entropy': 0.4,
                                                       'max_softmax': 0.8})])
    text = tool.signal_markdown(doc)
    assert '| gn | source | fog | 10 | 70.0 | 0.400 | 0.800 |' in text
