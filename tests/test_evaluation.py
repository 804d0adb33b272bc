"""Results bookkeeping, comparison tables, the running metric and the loop's domain specs."""
import pytest
import torch

from stag_seg.datasets.domains import domain_dataloader
from stag_seg.evaluation import RunningMetric, StreamResults, format_records, validate_results


def _doc(method, values, rounds=2, domains=('fog', 'night'), regularizers=()):
    results = StreamResults('mIoU', rounds, list(domains))
    it = iter(values)
    for r in range(1, rounds + 1):
        for d in domains:
            results.add(r, d, 10, {'mIoU': next(it), 'aAcc': 90.0}, seconds=1.0)
    return results.to_dict(method=method, regularizers=list(regularizers), config=None,
                           checkpoint=None, seed=0)


def test_results_hold_one_record_per_round_and_domain_and_their_mean():
    doc = _doc('Tent', [10.0, 20.0, 30.0, 40.0])
    validate_results(doc)
    assert doc['mean'] == 25.0 and doc['images_per_s'] == 10.0
    assert [(r['round'], r['domain']) for r in doc['records']] == [
        (1, 'fog'), (1, 'night'), (2, 'fog'), (2, 'night')]
    assert doc['records'][0]['aAcc'] == 90.0
    broken = dict(doc, records=doc['records'][:-1])
    with pytest.raises(ValueError, match='exactly one record per'):
        validate_results(broken)
    with pytest.raises(ValueError, match='is not the mean of the records'):
        validate_results(dict(doc, mean=1.0))


def test_a_missing_metric_key_names_what_the_evaluator_returned():
    results = StreamResults('accuracy', 1, ['a'], metric_key='accuracy/top1')
    with pytest.raises(KeyError, match=r"returned \['mIoU'\], without the metric 'accuracy/top1'"):
        results.add(1, 'a', 3, {'mIoU': 1.0}, 1.0)
    record = results.add(1, 'a', 3, {'accuracy/top1': 75.0}, 1.0)
    assert record['accuracy'] == 75.0


def test_accuracy_results_also_report_the_error(tmp_path):
    from stag_seg.evaluation import write_results
    results = StreamResults('accuracy', 1, ['fog', 'snow'], metric_key='accuracy/top1')
    results.add(1, 'fog', 4, {'accuracy/top1': 75.0}, 1.0)
    results.add(1, 'snow', 4, {'accuracy/top1': 50.0}, 1.0)
    assert [r['error'] for r in results.records] == [25.0, 50.0]
    assert results.summary_metrics()['mean/error'] == 37.5
    doc = results.to_dict(method='Tent', regularizers=[], config=None, checkpoint=None, seed=0)
    assert doc['mean_error'] == 37.5
    write_results(doc, str(tmp_path))
    rows = (tmp_path / 'tta_results.csv').read_text().splitlines()
    assert rows[0] == 'round,domain,num_samples,accuracy,error,seconds'
    assert rows[2] == '1,snow,4,50.0000,50.0000,1.000'
    assert 'mean accuracy: 62.50 (error 37.50)' in (tmp_path / 'tta_results.md').read_text()
    assert 'error' not in _doc('Tent', [1.0, 2.0, 3.0, 4.0])['records'][0]


def test_the_table_of_one_run_has_a_row_per_round_and_the_means():
    doc = _doc('Tent', [10.0, 20.0, 30.0, 40.0])
    lines = format_records(doc['records'], 'mIoU').splitlines()
    assert lines[0] == '| round | fog | night | mean |'
    assert lines[2] == '| 1 | 10.00 | 20.00 | 15.00 |'
    assert lines[4] == '| mean | 20.00 | 30.00 | **25.00** |'


class _FakeIoU:
    """The results an MMSeg IoUMetric accumulates: per sample (intersect, union, pred, label)."""

    def __init__(self):
        self.results = []


_FakeIoU.__name__ = 'IoUMetric'


def test_running_miou_matches_the_definition_incrementally():
    metric = _FakeIoU()
    evaluator = type('E', (), {'metrics': [metric]})()
    running = RunningMetric()
    assert running.update(evaluator) is None
    metric.results.append((torch.tensor([2., 0., 1.]), torch.tensor([4., 0., 2.]), None, None))
    assert running.update(evaluator) == pytest.approx(50.0)  # class 1 absent: not averaged
    metric.results.append((torch.tensor([2., 3., 0.]), torch.tensor([4., 3., 2.]), None, None))
    # totals: intersect (4, 3, 1), union (8, 3, 4) -> IoU (.5, 1, .25)
    assert running.update(evaluator) == pytest.approx(100 * (0.5 + 1 + 0.25) / 3)
    running.reset()
    metric.results.clear()
    assert running.update(evaluator) is None
    other = type('E', (), {'metrics': [object()]})()
    assert RunningMetric().update(other) is None


def test_domain_specs_derive_each_dataloader_from_the_template():
    template = dict(batch_size=1, dataset=dict(type='ACDCDataset', data_root='d', split='train'))
    name, cfg = domain_dataloader('fog', template, 'condition')
    assert name == 'fog' and cfg['dataset']['condition'] == 'fog'
    assert 'condition' not in template['dataset']  # the template is not modified
    name, cfg = domain_dataloader(
        dict(name='night-val', dataset=dict(condition='night', split='val')), template,
        'condition')
    assert name == 'night-val' and cfg['dataset']['split'] == 'val'
    full = dict(batch_size=4, dataset=dict(type='Other'))
    assert domain_dataloader(dict(name='x', dataloader=full), template,
                                          'condition') == ('x', full)
    with pytest.raises(TypeError, match="a name or a dict with a 'name'"):
        domain_dataloader(dict(dataset={}), template, 'condition')
