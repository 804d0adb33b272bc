"""Comparison tables, stream figures, prediction pictures and the running metrics behind them."""
import csv
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from stag_seg.engine import TTAShowHook
from stag_seg.methods.step import selected_fraction
from stag_seg.evaluation import (RunningMetric, StreamResults, compare_csv, compare_markdown,
                                 plot_results, run_labels, write_results)
from stag_seg.evaluation.tables import FIGURE_DPI, FIGURE_SIZE
from stag_seg.evaluation.visualize import colorize, segmentation_panel

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _doc(method, values, rounds=2, domains=('fog', 'night'), regularizers=(), num=10,
         curves=True, config=None):
    results = StreamResults('mIoU', rounds, list(domains))
    it = iter(values)
    for r in range(1, rounds + 1):
        for d in domains:
            value = next(it)
            rec = results.add(r, d, num, {'mIoU': value}, seconds=2.0)
            if curves:  # a running metric that ends at the domain's value
                rec.update(steps=num, curve=[[5, value + 3.0], [num, value]])
    return results.to_dict(method=method, regularizers=list(regularizers), config=config,
                           checkpoint=None, seed=0)


def test_the_comparison_has_a_column_per_round_and_domain_and_bolds_each_best():
    a = _doc('Tent', [10.0, 20.0, 30.0, 40.0])
    b = _doc('Tent', [12.0, 18.0, 31.0, 39.6], regularizers=['STAG'])
    table = compare_markdown([a, b], labels=['lr 3e-4', None]).splitlines()
    assert table[0] == ('| run | r1 fog | r1 night | r2 fog | r2 night | mean mIoU | '
                        'images/s |')
    # best per column in bold: a wins night in both rounds, b fog in both and the mean
    assert table[2] == '| Tent (lr 3e-4) | 10.0 | **20.0** | 30.0 | **40.0** | 25.00 | **5.00** |'
    assert table[3] == '| Tent+STAG | **12.0** | 18.0 | **31.0** | 39.6 | **25.15** | **5.00** |'


def test_the_csv_holds_the_same_numbers_at_full_precision(tmp_path):
    a = _doc('Tent', [10.125, 20.0, 30.0, 40.0])
    b = _doc('EATA', [12.0, 18.0, 31.0, 39.5])
    path = compare_csv([a, b], str(tmp_path / 'c.csv'))
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['run', 'r1 fog', 'r1 night', 'r2 fog', 'r2 night', 'mean mIoU', 'images/s']
    assert rows[1][0] == 'Tent' and [float(v) for v in rows[1][1:]] == [
        10.125, 20.0, 30.0, 40.0, pytest.approx(25.03125, abs=1e-4), 5.0]
    assert rows[2][0] == 'EATA' and float(rows[2][4]) == 39.5


def test_runs_of_the_same_name_are_told_apart_by_config():
    a = _doc('Tent', [1.0] * 4, config='configs/demo/x_tent.py')
    b = _doc('Tent', [1.0] * 4, config='configs/demo/x_tent_lr.py')
    assert run_labels([a, b]) == ['Tent (x_tent)', 'Tent (x_tent_lr)']
    assert run_labels([a, b], ['slow', 'fast']) == ['Tent (slow)', 'Tent (fast)']
    with pytest.raises(ValueError, match='1 labels for 2 runs'):
        run_labels([a, b], ['one'])


@pytest.mark.parametrize('other, match', [
    (dict(rounds=1, values=[1.0, 2.0]), 'run 2 has rounds 1, run 1 has 2'),
    (dict(domains=('rain', 'snow')), 'run 2 has domains'),
    (dict(num=7), 'run 2 scored 7 samples in round 1 fog, run 1 scored 10'),
])
def test_results_of_other_streams_are_refused(other, match):
    a = _doc('Tent', [10.0, 20.0, 30.0, 40.0])
    values = other.pop('values', [1.0] * 4)
    with pytest.raises(ValueError, match=match):
        compare_markdown([a, _doc('Tent', values, **other)])
    accuracy = dict(a, metric='accuracy', records=[
        {**{k: v for k, v in r.items() if k != 'mIoU'}, 'accuracy': r['mIoU']}
        for r in a['records']])
    with pytest.raises(ValueError, match="run 2 has metric 'accuracy'"):
        compare_markdown([a, accuracy])


def test_the_stream_figure_has_its_fixed_size_with_and_without_curves(tmp_path):
    a = _doc('Tent', [10.0, 20.0, 30.0, 40.0])
    b = _doc('Source', [15.0] * 4, curves=False)
    path = plot_results([a, b], str(tmp_path / 'f.png'), ['', 'no curve'])
    image = cv2.imread(path)
    assert image.shape == (round(FIGURE_SIZE[1] * FIGURE_DPI), round(FIGURE_SIZE[0] * FIGURE_DPI),
                           3)
    # one line per run, in matplotlib's first two colours (BGR here)
    for bgr in ((180, 119, 31), (14, 127, 255)):
        assert (np.abs(image.astype(int) - bgr).sum(axis=2) < 60).sum() > 100, bgr
    assert not (np.abs(image.astype(int) - (44, 160, 44)).sum(axis=2) < 60).any()  # no third


def test_compare_results_cli_writes_table_csv_and_figure_and_refuses_other_streams(tmp_path):
    paths = []
    for name, values, domains in (('a', [10.0, 20.0, 30.0, 40.0], ('fog', 'night')),
                                  ('b', [11.0, 19.0, 32.0, 41.0], ('fog', 'night')),
                                  ('c', [1.0] * 4, ('rain', 'snow'))):
        write_results(_doc('Tent', values, domains=domains), str(tmp_path / name))
        paths.append(str(tmp_path / name / 'tta_results.json'))
    out = tmp_path / 'cmp'
    proc = subprocess.run([sys.executable, 'tools/compare_results.py', *paths[:2], '--labels',
                           'first', 'second', '--out', str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '| Tent (second) | **11.0** | 19.0 | **32.0** | **41.0** | **25.75** |' in proc.stdout
    assert (out / 'comparison.md').read_text().startswith('| run | r1 fog |')
    assert (out / 'comparison.csv').read_text().count('\n') == 3
    assert cv2.imread(str(out / 'comparison.png')).shape[:2] == (420, 1000)
    proc = subprocess.run([sys.executable, 'tools/compare_results.py', paths[0], paths[2]],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'cannot compare results of different streams: run 2 has domains' in proc.stderr


class _Accuracy:  # the results an mmpretrain Accuracy metric accumulates, under its name
    def __init__(self):
        self.results = []


_Accuracy.__name__ = 'Accuracy'


def test_the_running_accuracy_matches_top1_on_scores_and_labels():
    metric = _Accuracy()
    evaluator = type('E', (), {'metrics': [metric]})()
    running = RunningMetric()
    assert running.update(evaluator) is None
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(10, 5, generator=gen)
    labels = torch.randint(0, 5, (10, ), generator=gen)
    for i in range(6):
        metric.results.append(dict(pred_score=scores[i], gt_label=labels[i:i + 1]))
    assert running.update(evaluator) == pytest.approx(
        100.0 * float((scores[:6].argmax(1) == labels[:6]).float().mean()))
    for i in range(6, 10):
        metric.results.append(dict(pred_label=scores[i].argmax().view(1),
                                   gt_label=labels[i:i + 1]))
    assert running.update(evaluator) == pytest.approx(
        100.0 * float((scores.argmax(1) == labels).float().mean()))


def test_the_selected_fraction_counts_only_valid_positions():
    mask = torch.tensor([[True, True, False, False]])
    valid = torch.tensor([[True, False, True, False]])
    assert selected_fraction(mask, valid) == 0.5  # 1 of the 2 valid positions
    assert selected_fraction(None, valid) == 1.0
    assert selected_fraction(torch.tensor([True, False, False, False]), None) == 0.25
    assert selected_fraction(mask, torch.zeros_like(valid)) == 0.0


def test_the_panel_puts_input_prediction_and_truth_side_by_side_in_the_palette():
    palette = [(128, 64, 128), (244, 35, 232)]
    pred = np.array([[0, 1], [1, 0]])
    gt = np.array([[0, 255], [1, 1]])
    assert colorize(gt, palette)[0, 1].tolist() == [0, 0, 0]  # ignored: black
    assert colorize(gt, palette)[1, 0].tolist() == [244, 35, 232]
    image = np.full((4, 4, 3), 7, np.uint8)  # resized to the prediction's size
    panel = segmentation_panel(image, np.kron(pred, np.ones((8, 8), int)),
                               np.kron(gt, np.ones((8, 8), int)), palette)
    header, gap = 22, 4
    assert panel.shape == (header + 16, 3 * 16 + 2 * gap, 3)
    assert panel[header + 2, 2].tolist() == [7, 7, 7]
    assert panel[header + 2, 16 + gap + 2].tolist() == [128, 64, 128]
    assert panel[header + 2, 2 * (16 + gap) + 10].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match='differ in size'):
        segmentation_panel(image, pred, np.zeros((3, 3), int), palette)


def test_the_show_hook_needs_a_positive_count():
    with pytest.raises(ValueError, match='num_images must be an int >= 1'):
        TTAShowHook('show', num_images=0)


def test_runs_of_other_batch_sizes_line_up_on_images_seen():
    from stag_seg.evaluation.tables import _curve, _spans
    one = _doc('Tent', [10.0, 20.0, 30.0, 40.0])  # batch size 1: 10 steps per domain
    two = _doc('Tent', [10.0, 20.0, 30.0, 40.0])
    for rec in two['records']:  # batch size 2: 5 steps, the curve at steps 2 and 5
        rec.update(steps=5, curve=[[2, 1.0], [5, 2.0]])
    assert [s[:2] for s in _spans(one)] == [s[:2] for s in _spans(two)] == [
        (0, 10), (10, 20), (20, 30), (30, 40)]
    first, last, rec = _spans(two)[1]
    assert _curve(first, last, rec, 'mIoU') == ([14.0, 20.0], [1.0, 2.0])
    first, last, rec = _spans(one)[1]
    assert _curve(first, last, rec, 'mIoU')[0] == [15.0, 20.0]
    old = dict(rec)
    del old['curve']  # results written before curves existed: a flat line at the value
    assert _curve(first, last, old, 'mIoU') == ([10, 20], [20.0, 20.0])


def test_a_nan_record_is_kept_and_never_bolded():
    a = _doc('Tent', [10.0, float('nan'), 30.0, 40.0])
    b = _doc('EATA', [12.0, 18.0, 31.0, 39.6])
    from stag_seg.evaluation import validate_results
    validate_results(a)  # the mean is NaN as well: still a valid document
    row = compare_markdown([a, b]).splitlines()[2]
    assert '| nan |' in row and '**18.0**' in compare_markdown([a, b])


def test_the_show_hook_draws_the_input_the_model_received():
    from mmengine.structures import BaseDataElement
    sample = BaseDataElement(metainfo=dict(img_path='/no/such/file.png'))
    tensor = torch.zeros(3, 2, 2, dtype=torch.uint8)
    tensor[0] = 200  # the first channel: blue for a BGR loader, red for an RGB one
    assert TTAShowHook._image(sample, tensor, bgr=True)[0, 0].tolist() == [0, 0, 200]
    assert TTAShowHook._image(sample, tensor, bgr=False)[0, 0].tolist() == [200, 0, 0]
    assert TTAShowHook._image(sample, None, bgr=True) is None  # no tensor and no file
