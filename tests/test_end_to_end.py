"""tools/test_tta.py on a tiny generated Cityscapes->ACDC-like tree, as a user runs it."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import build_segmentor, tiny_segmentor_cfg

from stag_seg.evaluation import load_results, validate_results

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CITYSCAPES_CLASSES = 19


@pytest.fixture(scope='module')
def tiny_run(tiny_tree, tmp_path_factory):
    """A config file and a checkpoint for a tiny 19-class segmentor."""
    tmp = tmp_path_factory.mktemp('run')
    model = build_segmentor(num_classes=CITYSCAPES_CLASSES)
    ckpt = str(tmp / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(note='test')), ckpt)
    model_cfg = tiny_segmentor_cfg(num_classes=CITYSCAPES_CLASSES)
    model_cfg.pop('adapt_optim_wrapper')
    base = osp.join(ROOT, 'configs', '_base_')
    config = tmp / 'tiny_tent_stag.py'
    config.write_text(
        f"_base_ = [{osp.join(base, 'datasets', 'synthetic_acdc.py')!r}, "
        f"{osp.join(base, 'default_runtime.py')!r}]\n"
        f'model = {model_cfg!r}\n'
        "model['tta_method'] = dict(type='Tent', regularizers=[dict(type='STAG')])\n"
        "model['adapt_optim_wrapper'] = dict(optimizer=dict(type='Adam', lr=1e-3))\n"
        f'test_dataloader = dict(num_workers=0, dataset=dict(data_root={tiny_tree!r}))\n'
        'test_cfg = dict(rounds=2)\n')
    return str(config), ckpt


def _test_tta(*args, cwd=ROOT):
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test_tta.py'), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_test_tta_writes_results_matching_the_schema(tiny_run, tmp_path):
    config, ckpt = tiny_run
    work_dir = str(tmp_path / 'work')
    proc = _test_tta(config, ckpt, '--work-dir', work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = load_results(osp.join(work_dir, 'tta_results.json'))
    validate_results(doc)
    assert doc['method'] == 'Tent' and doc['regularizers'] == ['STAG']
    assert doc['metric'] == 'mIoU' and doc['rounds'] == 2
    assert doc['domains'] == ['fog', 'night', 'rain', 'snow']
    assert [(r['round'], r['domain']) for r in doc['records']] == [
        (r, d) for r in (1, 2) for d in ('fog', 'night', 'rain', 'snow')]
    assert all(r['num_samples'] == 3 for r in doc['records'])
    # the method's and STAG's statistics, averaged per (round, domain)
    assert all(0 <= r['adapt/stag_multiplier'] <= 1 and -1 <= r['adapt/stag_cos'] <= 1
               and r['adapt/loss'] > 0 for r in doc['records'])
    assert doc['checkpoint'] == ckpt and doc['config'] == config and doc['seed'] == 0
    assert {'torch', 'mmseg', 'mmengine', 'stag_seg'} <= set(doc['versions'])
    assert doc['images_per_s'] > 0
    for ext in ('csv', 'md', 'png'):
        assert osp.getsize(osp.join(work_dir, f'tta_results.{ext}')) > 0
    with open(osp.join(work_dir, 'tta_results.csv')) as f:
        assert len(f.read().strip().splitlines()) == 1 + 8


def test_cfg_options_and_episodic_mode_reach_the_loop(tiny_run, tmp_path):
    config, ckpt = tiny_run
    work_dir = str(tmp_path / 'work')
    proc = _test_tta(config, ckpt, '--work-dir', work_dir, '--cfg-options', 'test_cfg.rounds=1',
                     'test_cfg.episodic=True', "model.tta_method.regularizers=[]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(osp.join(work_dir, 'tta_results.json')) as f:
        doc = json.load(f)
    assert doc['rounds'] == 1 and len(doc['records']) == 4
    assert doc['regularizers'] == [] and doc['episodic'] is True
    # the merged config, overrides included, is kept beside the results
    with open(doc['config_dump']) as f:
        dumped = f.read()
    assert 'episodic=True' in dumped and 'regularizers=[]' in dumped


def test_a_checkpoint_for_another_number_of_classes_is_a_clear_error(tiny_run, tmp_path):
    config, _ = tiny_run
    other = build_segmentor(num_classes=7)
    ckpt = str(tmp_path / 'seven.pth')
    torch.save(dict(state_dict=other.state_dict()), ckpt)
    proc = _test_tta(config, ckpt, '--work-dir', str(tmp_path / 'work'))
    assert proc.returncode != 0
    assert "decode_head.conv_seg.weight has 7 classes, the model's classifier 19" in proc.stderr


def test_editing_a_config_template_key_is_refused_with_the_model_key(tiny_run, tmp_path):
    config, ckpt = tiny_run
    proc = _test_tta(config, ckpt, '--cfg-options', 'tta_method.loss=pseudo_label')
    assert proc.returncode != 0 and 'set model.tta_method... instead' in proc.stderr


def test_a_missing_checkpoint_is_named(tiny_run, tmp_path):
    config, _ = tiny_run
    missing = str(tmp_path / 'nope.pth')
    proc = _test_tta(config, missing, '--work-dir', str(tmp_path / 'work'))
    assert proc.returncode != 0 and f'checkpoint not found: {missing}' in proc.stderr


def test_a_pickle_that_would_run_code_is_refused(tiny_run, tmp_path):
    config, _ = tiny_run
    marker = tmp_path / 'payload-ran'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    ckpt = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=Payload()), ckpt)
    proc = _test_tta(config, ckpt, '--work-dir', str(tmp_path / 'work'))
    assert proc.returncode != 0
    assert not marker.exists()
    assert 'Weights only load failed' in proc.stderr or 'refused' in proc.stderr


def test_the_stock_test_loop_adapts_a_tta_segmentor_too(tiny_run, tmp_path):
    """A plain MMSeg test flow (Runner.from_cfg(cfg).test() with MMEngine's TestLoop)."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    config, ckpt = tiny_run
    cfg = Config.fromfile(config)
    cfg.test_cfg = dict(type='TestLoop')
    cfg.test_dataloader.dataset.condition = 'fog'
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = ckpt
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 'mIoU' in metrics
    source = torch.load(ckpt, weights_only=True)['state_dict']
    adapted = runner.model.state_dict()
    changed = {k for k in source if not torch.equal(source[k], adapted[k])}
    from stag_seg.methods import collect_norm_params
    assert changed and changed <= set(collect_norm_params(runner.model)[1])


@pytest.mark.parametrize('test_cfg, match', [
    (dict(rounds=0), 'test_cfg.rounds must be an int >= 1, got 0'),
    (dict(domains=[]), 'needs at least one domain'),
    (dict(domains=['fog', 'fog']), "repeated names: \\['fog', 'fog'\\]"),
    (dict(domains=['fog', 'haze']), "unknown ACDC condition 'haze'"),
])
def test_bad_loop_settings_are_clear_errors(tiny_run, tmp_path, test_cfg, match):
    from mmengine.config import Config
    from mmengine.runner import Runner
    config, ckpt = tiny_run
    cfg = Config.fromfile(config)
    cfg.test_cfg.update(test_cfg)
    cfg.work_dir, cfg.load_from = str(tmp_path), ckpt
    cfg.experiment_name = f'bad_loop_{abs(hash(match))}'
    with pytest.raises((ValueError, TypeError), match=match):
        Runner.from_cfg(cfg).test()


def test_show_dir_scalars_environment_and_tensorboard_of_a_tiny_run(tiny_run, tiny_tree,
                                                                    tmp_path):
    import glob

    import cv2
    config, ckpt = tiny_run
    work_dir = tmp_path / 'work'
    with_tensorboard = tmp_path / 'tiny_tensorboard.py'  # the way a user adds a backend
    with_tensorboard.write_text(
        f'_base_ = [{config!r}]\n'
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
        "dict(type='TensorboardVisBackend')])\n")
    proc = _test_tta(str(with_tensorboard), ckpt, '--work-dir', str(work_dir), '--show-dir',
                     'show', '--show-num', '2', '--cfg-options', 'test_cfg.curve_points=3')
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the first 2 images of every (round, domain), one file per image and round
    expected = set()
    for domain in ('fog', 'night', 'rain', 'snow'):
        images = sorted(glob.glob(osp.join(tiny_tree, 'rgb_anon', domain, 'train', '*', '*.png')))
        stems = [osp.splitext(osp.basename(p))[0] for p in images[:2]]
        expected |= {f'{domain}/{stem}_r{r:02d}.png' for stem in stems for r in (1, 2)}
    shown = {osp.relpath(p, work_dir / 'show')
             for p in glob.glob(str(work_dir / 'show' / '*' / '*.png'))}
    assert shown == expected
    panel = cv2.imread(str(work_dir / 'show' / sorted(expected)[0]))
    assert panel.shape[1] == 3 * 64 + 2 * 4  # input | prediction | truth at 64 pixels wide
    # scalars through the visualizer: running metric, losses, fraction selected, per domain
    (scalars, ) = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    with open(scalars) as f:
        lines = [json.loads(line) for line in f]
    running = [s for s in lines if 'running/mIoU' in s]
    assert len(running) == 2 * 4 * 3  # curve_points=3 on 3-image domains, 8 domains
    assert all({'adapt/loss', 'adapt/stag_multiplier', 'adapt/selected'} <= set(s)
               for s in running)
    assert [s['step'] for s in running] == list(range(1, 25))
    per_domain = [s for s in lines if 'mIoU/domain' in s]
    doc = load_results(str(work_dir / 'tta_results.json'))
    assert [s['mIoU/domain'] for s in per_domain] == [r['mIoU'] for r in doc['records']]
    assert per_domain[0]['mIoU/fog'] == doc['records'][0]['mIoU']
    # the running curve ends at the record's own value (same areas, same definition)
    for rec in doc['records']:
        assert [p[0] for p in rec['curve']] == [1, 2, 3]
        assert rec['curve'][-1][1] == pytest.approx(rec['mIoU'], abs=0.01)
    assert glob.glob(str(work_dir / '*' / 'vis_data' / 'events.out.tfevents.*'))
    # how the result was made travels with it
    env = json.loads((work_dir / 'environment.json').read_text())
    assert env['device'] == 'cpu' and env['seed'] == 0 and env['world_size'] == 1
    assert 'test_tta.py' in env['command'] and env['versions']['torch'] == torch.__version__
    assert doc['environment']['device'] == 'cpu'
    assert osp.dirname(doc['config_dump']) == str(work_dir)


@pytest.mark.parametrize('option, where', [
    ('tta_method.e0=1.0', 'model.tta_method'),
    ('fisher_data.num_images=10', 'model.tta_method.fisher_data'),
    ('corruptions=[fog]', 'test_cfg.domains'),
])
def test_template_keys_on_the_command_line_are_refused_with_the_right_key(option, where):
    proc = _test_tta(osp.join(ROOT, 'configs/imagenet_c/resnet50_eata_fisher.py'),
                     '--cfg-options', option)
    assert proc.returncode != 0
    assert f'set {where}... instead' in proc.stderr


@pytest.mark.parametrize('method', [
    "dict(type='DAT', scales=(1.0, 1.25, 1.5), flip=False, fraction=0.05, window=2)",
    "dict(type='SVDP', scales=(1.0, 1.5))",
    "dict(type='HybridTTA', window=2, threshold=10.0, detector_alpha=0.5)"])
def test_the_multi_view_methods_run_a_stream(tiny_run, tiny_tree, tmp_path, method):
    config, ckpt = tiny_run
    model_cfg = tiny_segmentor_cfg(num_classes=CITYSCAPES_CLASSES)
    model_cfg.pop('adapt_optim_wrapper')
    if 'SVDP' in method:  # the prompt on the backbone, as configs/_base_/tta/svdp.py says
        model_cfg['backbone'] = dict(type='SparsePromptedBackbone', backbone=model_cfg['backbone'],
                                     prompt=dict(sparse_rate=0.01, input_size=(32, 64)))
    if 'HybridTTA' in method:  # adapters, mask token, neck, as configs/_base_/tta/hybrid-tta.py
        model_cfg['backbone'] = dict(type='HybridTTABackbone', backbone=model_cfg['backbone'],
                                     recon_channels=16)
    base = osp.join(ROOT, 'configs', '_base_')
    path = tmp_path / 'multi_view.py'
    path.write_text(
        f"_base_ = [{osp.join(base, 'datasets', 'synthetic_acdc.py')!r}, "
        f"{osp.join(base, 'default_runtime.py')!r}]\n"
        f'model = {model_cfg!r}\n'
        f"model['tta_method'] = {method}\n"
        "model['adapt_optim_wrapper'] = dict(optimizer=dict(type='Adam', lr=1e-3))\n"
        f'test_dataloader = dict(num_workers=0, dataset=dict(data_root={tiny_tree!r}))\n'
        "test_cfg = dict(rounds=2, optimizer_reset='domain')\n")
    work_dir = str(tmp_path / 'work')
    proc = _test_tta(str(path), ckpt, '--work-dir', work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = load_results(osp.join(work_dir, 'tta_results.json'))
    validate_results(doc)
    assert len(doc['records']) == 8
    if 'DAT' in method:  # the loop tells DAT each visit's round: the rate halves in round 2
        assert {r['adapt/second_dat_lr'] for r in doc['records'] if r['round'] == 1} == {1e-3}
        assert {r['adapt/second_dat_lr'] for r in doc['records'] if r['round'] == 2} == {5e-4}
    elif 'SVDP' in method:
        assert all(r['adapt/svdp_uncertainty'] >= 0 for r in doc['records'])
    else:  # the detector switches to adapter tuning at the second step (window 2)
        tuning = [r['adapt/hybrid_adapter_tuning'] for r in doc['records']]
        assert tuning[0] == pytest.approx(2 / 3) and max(tuning) == 1.0, tuning
