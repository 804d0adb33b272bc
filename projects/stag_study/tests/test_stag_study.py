"""The pre-registered STAG study: its split, its runs and its rules, on numbers worked out by
hand."""
import json
import math
import os.path as osp
import sys

import pytest
from mmengine.config import Config


#: The project (its ``stag_study`` package) and the repository (the configs' paths start there).
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(osp.dirname(PROJECT))
sys.path.insert(0, PROJECT)

from stag_seg.datasets import CORRUPTIONS  # noqa: E402
from stag_study.study import (benchmark_checks, paired_change, plan_phase,  # noqa: E402
                              plan_phase2, plan_segmentation2, reading_rule, rule2, rule2_table,
                              rule_table, run_phase, run_segmentation, segmentation_summary,
                              segmentation_table, split_domains, study_table)



@pytest.fixture(scope='module')
def study():
    return Config.fromfile(osp.join(ROOT, 'projects/stag_study/configs/stag-study.py'))


@pytest.fixture(scope='module')
def suite(study):
    return Config.fromfile(osp.join(ROOT, study.suite))


def test_the_split_alternates_the_corruptions_and_shares_nothing(study):
    dev, held = study.splits.dev, study.splits.held_out
    assert dev.corruptions == list(CORRUPTIONS[0::2])
    assert held.corruptions == list(CORRUPTIONS[1::2])
    assert not set(dev.seeds) & set(held.seeds)
    assert not set(dev.families) & set(held.families)


def test_a_mixed_setting_mixes_only_the_splits_corruptions():
    assert split_domains('continual', ['fog', 'snow']) == ['fog', 'snow']
    assert split_domains('mixed', ['fog', 'snow']) == [
        dict(name='mixed', dataset=dict(vary=dict(corruption=['fog', 'snow'])))]


def test_each_phase_plans_its_runs_with_the_candidates_options(study, suite):
    bench = plan_phase(study, suite, 'benchmark')
    assert len(bench) == 3 * (3 + 4 * 3) * 3  # candidates x (bn + gn runs) x seeds
    grid = plan_phase(study, suite, 'readings', candidate='C')
    assert len(grid) == 2 * 4 * 2 * 3 * (1 + 8)  # families x settings x methods x seeds x runs
    run = next(r for r in grid if r.key == 'bn/mixed/sar/logit-2/seed1')
    assert run.seed == 1 and run.config.endswith('small-convnet_sar.py')
    assert run.options['test_dataloader.batch_size'] == 16
    assert run.options['model.adapt_optim_wrapper.optimizer.lr'] == 1e-3
    assert run.options['model.tta_method.regularizers'] == [
        dict(type='STAG', mode='loss', space='logit', weighting='none', weight=2.0)]
    assert run.options['test_cfg.domains'][0]['dataset']['vary']['corruption'] == \
        study.splits.dev.corruptions
    assert run.overlays[0].endswith('digits-c_bn.py') and run.overlays[-1].endswith('mixed.py')
    batch1 = next(r for r in grid if r.key == 'gn/batch1/tent/base/seed0')
    assert 'test_dataloader.batch_size' not in batch1.options
    assert 'model.tta_method.regularizers' not in batch1.options
    held = plan_phase(study, suite, 'held_out', candidate='A', default=('cross_entropy', 0.5))
    assert {r.key.split('/')[0] for r in held} == {'ln', 'vit'}
    assert {r.seed for r in held} == {3, 4, 5}
    assert {r.key.split('/')[3] for r in held} == {'base', 'cross_entropy-0.5'}
    with pytest.raises(ValueError, match='needs the benchmark candidate'):
        plan_phase(study, suite, 'readings')


def test_paired_change_is_the_mean_and_standard_error_of_the_differences():
    mean, se = paired_change([3.0, 5.0, 10.0], [1.0, 2.0, 3.0])  # differences 2, 3, 7
    assert mean == pytest.approx(4.0)
    sd = math.sqrt(((2 - 4) ** 2 + (3 - 4) ** 2 + (7 - 4) ** 2) / 2)
    assert se == pytest.approx(sd / math.sqrt(3))


def _grid(cells, values):
    """errors for the rule: values[label][cell] = three errors (seeds 0, 1, 2)."""
    return {f'{cell}/{label}/seed{s}': v[s] for label, per_cell in values.items()
            for cell, v in per_cell.items() for s in range(3)}


def test_the_rule_refuses_harm_beyond_noise_and_excess_spread(study):
    cells = ['gn/continual/tent', 'gn/mixed/sar']
    base = {c: [20.0, 21.0, 22.0] for c in cells}
    values = {
        'base': base,
        # -3 mean change, but harms the second cell by +1.0 with every seed (SE 0): refused
        'a-1': {cells[0]: [15.0, 16.0, 17.0], cells[1]: [21.0, 22.0, 23.0]},
        # helps on average, but its spread (3) is above twice the base's (1): refused
        'b-1': {cells[0]: [17.0, 20.0, 23.0], cells[1]: [19.0, 20.0, 21.0]},
        # a small gain and a noisy +0.3 (within 2 SE of zero): qualifies
        'c-1': {cells[0]: [19.5, 20.5, 21.5], cells[1]: [20.0, 21.9, 22.0]},
    }
    result = reading_rule(study, _grid(cells, values))
    assert not result['candidates']['a-1']['qualifies']
    assert result['candidates']['a-1']['cells'][cells[1]]['harmful']
    assert not result['candidates']['b-1']['qualifies']
    assert result['candidates']['b-1']['cells'][cells[0]]['too_spread']
    assert result['candidates']['c-1']['qualifies']
    assert result['candidates']['c-1']['mean_change'] == pytest.approx((-0.5 + 0.3) / 2)
    assert result['default'] == 'c-1' and result['qualified']
    # without c, nothing qualifies: the best mean change is the default, and it says so
    del values['c-1']
    result = reading_rule(study, _grid(cells, values))
    assert result['default'] == 'a-1' and not result['qualified']
    # the table the tool prints: b's first cell changes by -3, -1, +1 (SE 2 / sqrt(3))
    assert rule_table(result).splitlines() == [
        '| cell | a-1 | b-1 |', '|---|---:|---:|',
        '| gn/continual/tent | -5.00 ± 0.00 | -1.00 ± 1.15~ |',
        '| gn/mixed/sar | +1.00 ± 0.00! | -1.00 ± 0.00 |',
        '| mean | -2.00 | -1.00 |', '| qualifies | no | no |']


def test_phase_two_plans_the_first_studys_cells_and_its_regimes(study, suite):
    dev = plan_phase2(study, suite, 'readings2', 'A')
    # 16 cells of the first study, the Adam cell in each dev family and the collapse cell in
    # each, every one over 3 seeds with the base and the 8 candidates
    assert len(dev) == (16 + 2 + 2) * 3 * (1 + 8)
    adam = next(r for r in dev if r.key == 'bn/continual+adam/tent/reweight-smooth/seed2')
    assert adam.seed == 2 and adam.config.endswith('small-convnet_tent.py')
    assert adam.options['model.adapt_optim_wrapper.optimizer'] == dict(
        _delete_=True, type='Adam', lr=1e-3, betas=(0.9, 0.999))
    assert 'model.adapt_optim_wrapper.optimizer.lr' not in adam.options
    assert adam.options['lr_scaling'] is None
    assert adam.options['test_dataloader.batch_size'] == 64
    assert adam.options['test_cfg.rounds'] == 3
    assert adam.options['test_cfg.domains'] == study.splits.dev.corruptions
    assert adam.options['model.tta_method.regularizers'] == [dict(
        type='STAG', space='feature', gradient='entropy', mode='reweight', reweight='smooth',
        power=1.0)]
    collapse = next(r for r in dev if r.key == 'gn/continual+collapse/tent/base/seed0')
    assert collapse.options['test_dataloader.batch_size'] == 16
    assert collapse.options['test_cfg.rounds'] == 5
    assert 'model.tta_method.regularizers' not in collapse.options
    first = next(r for r in dev if r.key == 'gn/mixed/sar/logit-0.1/seed1')
    assert first.options['model.adapt_optim_wrapper.optimizer.lr'] == 3e-3  # candidate A
    assert 'test_cfg.rounds' not in first.options
    held = plan_phase2(study, suite, 'held_out2', 'A', chosen='h_weighted-0.1')
    assert {r.key.split('/')[0] for r in held} == {'ln', 'vit'}
    assert {r.key.split('/')[3] for r in held} == {'base', 'h_weighted-0.1'}
    assert len(held) == (16 + 2 + 2) * 3 * 2
    with pytest.raises(ValueError, match='needs the candidate readings2 chose'):
        plan_phase2(study, suite, 'held_out2', 'A')


def test_phase_two_rule_ranks_qualifying_candidates_on_the_collapse_cells(study):
    cells = ['gn/continual/tent', 'bn/continual+adam/tent', 'gn/continual+collapse/tent']
    base = {c: [20.0, 21.0, 22.0] for c in cells}
    values = {
        'base': base,
        # the best collapse gain (-4), but the Adam cell loses 1.0 at every seed: harmed
        'reweight-smooth': {cells[0]: [20.0, 21.0, 22.0], cells[1]: [21.0, 22.0, 23.0],
                            cells[2]: [16.0, 17.0, 18.0]},
        # loses 0.6 +- 0.46: within the margin once noise is counted (0.6 - 2 * 0.46 < 0.5)
        'feature-0.1': {cells[0]: [20.0, 22.5, 22.3], cells[1]: [20.0, 21.0, 22.0],
                        cells[2]: [19.0, 20.0, 21.0]},
        # no harm, a smaller collapse gain
        'logit-0.1': {cells[0]: [20.0, 21.0, 22.0], cells[1]: [20.0, 21.0, 22.0],
                      cells[2]: [19.5, 20.5, 21.5]},
    }
    result = rule2(study, _grid(cells, values))
    smooth = result['candidates']['reweight-smooth']
    assert smooth['cells'][cells[1]]['harmed'] and not smooth['qualifies']
    feature = result['candidates']['feature-0.1']
    # differences 0, 1.5, 0.3: mean 0.6, variance 1.26 / 2, SE sqrt(0.63 / 3) = 0.458
    assert feature['cells'][cells[0]]['change'] == pytest.approx(0.6)
    assert feature['cells'][cells[0]]['se'] == pytest.approx(math.sqrt(0.63 / 3))
    assert feature['qualifies'] and feature['ranked_change'] == pytest.approx(-1.0)
    assert result['default'] == 'feature-0.1' and result['qualified']
    # without the qualifying ones: the smallest worst case, whatever the gain
    values['logit-0.1'][cells[1]] = [22.0, 23.0, 24.0]  # +2 at every seed
    del values['feature-0.1']
    result = rule2(study, _grid(cells, values))
    assert not result['qualified'] and result['default'] == 'reweight-smooth'
    assert result['candidates']['logit-0.1']['worst_change'] == pytest.approx(2.0)
    assert rule2_table(result).splitlines()[-4:] == [
        '| mean | -1.00 | +0.50 |', '| ranked cells | -4.00 | -0.50 |',
        '| worst | +1.00 | +2.00 |', '| qualifies | no | no |']


def _bench(name, table):
    return {f'{name}/{key}/seed{s}': v[s] for key, v in table.items() for s in range(3)}


def test_the_benchmark_checks_pick_the_candidate_with_most_published_phenomena(study):
    flat = lambda x: [x, x, x]  # noqa: E731
    good = {'bn/continual/source': flat(40.0), 'bn/continual/norm': flat(20.0),
            'bn/continual/tent': flat(19.0), 'gn/continual/source': flat(20.0),
            'gn/continual/tent': [18.0, 18.5, 18.2], 'gn/continual/sar': flat(19.0)}
    for setting in ('label_shift', 'batch1', 'mixed'):
        good.update({f'gn/{setting}/source': flat(20.0), f'gn/{setting}/tent': flat(20.0),
                     f'gn/{setting}/sar': flat(20.0)})
    good['gn/label_shift/tent'] = [24.0, 25.0, 26.0]  # Tent degrades, SAR holds
    worse = dict(good, **{'gn/continual/tent': [22.0, 22.1, 22.3]})
    errors = {**_bench('A', worse), **_bench('B', good), **_bench('C', good)}
    result = benchmark_checks(study, errors)
    assert [c['passed'] for c in result['candidates']['A']['checks']] == [True, False, True]
    assert result['candidates']['B']['passed'] == 3
    assert result['chosen'] == 'B'  # B and C tie: the one closer to the published protocols
    assert result['candidates']['B']['checks'][2]['settings']['label_shift']['passed']


def test_a_phase_reads_back_the_runs_it_has_and_runs_the_others(study, suite, tmp_path):
    runs = plan_phase(study, suite, 'benchmark')[:3]
    done = tmp_path / runs[0].key
    done.mkdir(parents=True)
    (done / 'tta_results.json').write_text(json.dumps(dict(mean_error=12.5)))
    calls = []

    def runner(cfg):
        calls.append(cfg.work_dir)
        return dict(mean_error=30.0 + len(calls))

    errors = run_phase(runs, str(tmp_path), runner, log=lambda _: None)
    assert errors == {runs[0].key: 12.5, runs[1].key: 31.0, runs[2].key: 32.0}
    assert calls == [str(tmp_path / r.key) for r in runs[1:]]


def test_the_table_reads_every_runs_error_and_speed(study, tmp_path):
    for phase, split in (('readings', 'dev'), ('held_out', 'held_out')):
        for family in study.splits[split].families:
            for setting in study.settings:
                for method in study.base_methods:
                    for label, errs in (('base', [20.0, 22.0, 24.0]),
                                        ('logit-2', [19.0, 20.0, 24.0])):
                        for seed, err in zip(study.splits[split].seeds, errs):
                            d = tmp_path / phase / family / setting / method / label / f'seed{seed}'
                            d.mkdir(parents=True)
                            (d / 'tta_results.json').write_text(json.dumps(dict(
                                mean_error=err, images_per_s=100.0 if label == 'base' else 90.0)))
    table = study_table(study, str(tmp_path), 'logit-2').splitlines()
    assert len(table) == 2 + 2 * 2 * 4 * 2
    # changes -1, -2, 0: mean -1, SE 1/sqrt(3); the base's SE is 2/sqrt(3)
    assert table[2] == ('| dev | gn | continual | tent | 22.00 ± 1.15 | 21.00 ± 1.53 | '
                        '-1.00 ± 0.58 | 100 | 90 |')
    assert table[-1].startswith('| held_out | vit | mixed | sar |')


def test_held_out_segmentation_runs_each_method_with_and_without_the_chosen_candidate(
        study, tmp_path):
    runs = plan_segmentation2(study, 'reweight-smooth')
    assert [r.key for r in runs] == [
        f'seg/{stream}/{method}/{label}' for stream in ('demo', 'calibrated')
        for method in ('tent', 'sar') for label in ('base', 'reweight-smooth')]
    by_key = {r.key: r for r in runs}
    tent = by_key['seg/calibrated/tent/reweight-smooth']
    assert tent.config == 'configs/demo/segformer-mit-b0_tent.py' and tent.seed is None
    assert tent.options['test_cfg.rounds'] == 3
    assert tent.options['test_dataloader.dataset.data_root'] == 'data/synthetic_acdc_calibrated'
    assert tent.options['model.tta_method.regularizers'] == [
        dict(type='STAG', **study.phase2.candidates['reweight-smooth'])]
    assert 'model.tta_method.regularizers' not in by_key['seg/demo/sar/base'].options
    assert 'test_dataloader.dataset.data_root' not in by_key['seg/demo/sar/base'].options
    with pytest.raises(ValueError, match='readings2 chose'):
        plan_segmentation2(study, 'feature-0.5')

    def doc(miou):  # two rounds of two domains
        return dict(metric='mIoU', mean=sum(miou) / 4, images_per_s=2.0,
                    environment=dict(torch_threads=2),
                    records=[dict(round=r, domain=d, mIoU=v)
                             for (r, d), v in zip([(1, 'fog'), (1, 'night'), (2, 'fog'),
                                                   (2, 'night')], miou)])

    values = {'base': [40.0, 42.0, 30.0, 32.0], 'reweight-smooth': [41.0, 43.0, 33.0, 35.0]}
    docs = run_segmentation(runs[:2], str(tmp_path),
                            lambda cfg: doc(values[cfg.work_dir.split('/')[-1]]),
                            log=lambda _: None)
    summary = segmentation_summary(docs, 'reweight-smooth')
    cell = summary['streams']['demo']['tent']
    assert cell['base']['per_round'] == [41.0, 31.0] and cell['base']['mean'] == 36.0
    assert cell['candidate']['per_round'] == [42.0, 34.0] and cell['change'] == 2.0
    assert segmentation_table(summary).splitlines()[2] == (
        '| demo | tent | 41.00 | 31.00 | 36.00 | 42.00 | 34.00 | 38.00 | +2.00 |')
