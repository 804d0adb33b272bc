"""The installed model zoos under STAGHook (tools/sweep_zoo.py): every model adapts, is refused with
a reason, or cannot be built here; none crashes.

The default run covers one model of each kind the sweep meets; the whole sweep (every algorithm
folder of MMSeg and mmpretrain, about 10 minutes) is marked ``zoo`` and run by ``make test-zoo``
and CI.
"""
import importlib.util
import json
import os.path as osp

import pytest
from conftest import ROOT

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

RESULTS = osp.join(ROOT, 'results', 'model_zoo', 'supported_models.json')


def _tool():
    spec = importlib.util.spec_from_file_location('sweep_zoo', osp.join(ROOT, 'tools',
                                                                        'sweep_zoo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep_zoo = _tool()


def _by_folder(records):
    return {(r['zoo'], r['folder'], r['batch_size']): r for r in records}


def test_one_segmentor_of_each_kind(tmp_path):
    records = _by_folder(sweep_zoo.sweep_mmseg(
        ['pspnet', 'deeplabv3', 'ocrnet', 'point_rend', 'mask2former', 'segmenter'],
        str(tmp_path)))
    pspnet = records['mmseg', 'pspnet', 1]  # the 1x1 bin of its pyramid pooling
    assert pspnet['outcome'] == 'adapted' and pspnet['bn_running_fallbacks'] >= 1
    assert 'stag_multiplier' in pspnet['stag_stats']  # STAG's default weighting
    assert records['mmseg', 'deeplabv3', 1]['outcome'] == 'adapted'  # ASPP's image pooling
    assert records['mmseg', 'ocrnet', 1]['outcome'] == 'adapted'  # a cascade
    point_rend = records['mmseg', 'point_rend', 1]
    assert point_rend['outcome'] == 'refused' and 'decode_head[1] (PointHead)' in \
        point_rend['reason']
    assert records['mmseg', 'segmenter', 1]['outcome'] == 'refused'
    mask2former = records['mmseg', 'mask2former', 1]
    assert mask2former['outcome'] == 'not buildable'
    assert 'needs mmdet' in mask2former['reason']
    assert 'classifies masks, not pixels' in mask2former['would_refuse']


def test_one_classifier_of_each_kind(tmp_path):
    records, others = sweep_zoo.sweep_mmpretrain(
        ['resnet', 'mocov2', 'inception_v3', 'deit', 'vgg', 'dinov2'], str(tmp_path))
    assert others == {'dinov2': 'ImageClassifier'}  # headless: a feature extractor
    records = _by_folder(records)
    for batch_size in (1, 4):
        assert records['mmpretrain', 'resnet', batch_size]['outcome'] == 'adapted'
        # a linear-probe config: frozen stages and norm_eval, which train() re-applies
        assert records['mmpretrain', 'mocov2', batch_size]['outcome'] == 'adapted'
        # the classifier is in the backbone; the head is a plain ClsHead
        assert records['mmpretrain', 'inception_v3', batch_size]['outcome'] == 'adapted'
        # a distilled head averages two classifiers
        assert records['mmpretrain', 'deit', batch_size]['outcome'] == 'refused'
        vgg = records['mmpretrain', 'vgg', batch_size]  # VGG-11 has no norm layer for Tent
        assert vgg['outcome'] == 'refused' and 'cannot be adapted by Tent' in vgg['reason']


def test_the_config_rules_pick_one_config_per_folder():
    seg = dict(sweep_zoo.mmseg_configs())
    assert osp.basename(seg['pspnet']) == 'pspnet_r101-d8_4xb2-40k_cityscapes-512x1024.py'
    assert 'dsdl' not in seg and '_base_' not in seg
    assert 'cityscapes' not in osp.basename(seg['beit'])  # no Cityscapes config there
    assert sweep_zoo._preference('x', 'a_in1k.py') < sweep_zoo._preference('x', 'b_in21k.py')
    assert sweep_zoo._preference('x', 'z.py') < sweep_zoo._preference('x', 'benchmarks/a.py')
    assert sweep_zoo._preference('x', 'benchmarks/a.py') < sweep_zoo._preference('x',
                                                                                'deploy/a.py')


def test_the_committed_sweep_has_no_crash_and_its_counts_are_its_records():
    # docs/en/supported_models.md is checked against it with every generated table
    # (tests/test_results.py)
    with open(RESULTS) as f:
        document = json.load(f)
    assert all(t['crash'] == 0 for t in document['counts'].values())
    assert document['counts'] == sweep_zoo.counts(document['records'])


@pytest.mark.zoo
def test_every_model_of_both_zoos_adapts_or_is_refused_and_none_crashes(tmp_path):
    records = sweep_zoo.sweep_mmseg(None, str(tmp_path))
    found, others = sweep_zoo.sweep_mmpretrain(None, str(tmp_path))
    records += found
    crashes = [r for r in records if r['outcome'] == 'crash']
    assert not crashes, crashes
    with open(RESULTS) as f:
        committed = json.load(f)
    outcome = {k: r['outcome'] for k, r in _by_folder(records).items()}
    assert outcome == {k: r['outcome'] for k, r in _by_folder(committed['records']).items()}
    assert others == committed['not_image_classifiers']
