"""Two CPU processes (torchrun, gloo) give the single-process answer with the per-step batch
doubled, keep identical weights on every rank, and fail loudly when one rank fails."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import ROOT, build_segmentor, tiny_segmentor_cfg

from stag_seg.datasets.generators import write_synthetic_acdc

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

PROBE = '''
import json, os
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DistProbe(Hook):
    """Test-only: a checksum of the weights after every step; the final weights; a failure."""
    priority = 'LOWEST'

    def __init__(self, out, fail_rank=-1, fail_at=-1):
        self.out, self.fail_rank, self.fail_at, self.sums = out, fail_rank, fail_at, []

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.sums.append(sum(float(p.double().sum()) for p in model.parameters()))
        if get_rank() == self.fail_rank and len(self.sums) == self.fail_at:
            raise RuntimeError('injected failure for the test')

    def after_test(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(model.state_dict(), os.path.join(self.out, f'rank{get_rank()}.pth'))
        with open(os.path.join(self.out, f'sums{get_rank()}.json'), 'w') as f:
            json.dump(self.sums, f)
'''


@pytest.fixture(scope='module')
def dist_setup(tmp_path_factory):
    """A stream of 4 images per domain, a LayerNorm/GroupNorm segmentor and its config."""
    tmp = tmp_path_factory.mktemp('dist')
    tree = str(tmp / 'tree')
    write_synthetic_acdc(tree, num_source_train=1, num_source_val=1, num_target=4,
                         conditions=['fog', 'snow'], width=64, height=32, workers=1)
    (tmp / 'dist_probe.py').write_text(PROBE)
    gn = dict(type='GN', num_groups=4, requires_grad=True)  # per-sample, like LayerNorm
    decode_head = dict(tiny_segmentor_cfg()['decode_head'], norm_cfg=gn, num_classes=19)
    model = build_segmentor(num_classes=19, decode_head=decode_head)
    ckpt = str(tmp / 'gn.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    model_cfg = tiny_segmentor_cfg(num_classes=19, decode_head=decode_head)
    model_cfg.update(tta_method=dict(type='Tent', regularizers=[dict(type='STAG')]),
                     adapt_optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-3)))
    config = tmp / 'gn_tent_stag.py'
    base = osp.join(ROOT, 'configs', '_base_')
    config.write_text(textwrap.dedent(f'''
        _base_ = [{osp.join(base, 'datasets', 'synthetic_acdc.py')!r},
                  {osp.join(base, 'default_runtime.py')!r}]
        custom_imports = dict(imports=['stag_seg', 'dist_probe'], allow_failed_imports=False)
        model = {model_cfg!r}
        test_dataloader = dict(num_workers=0, dataset=dict(data_root={tree!r}))
        test_cfg = dict(domains=['fog', 'snow'], rounds=2, progress=False)
        env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=60))
        '''))
    stock = {k: v for k, v in model_cfg.items() if k not in ('tta_method', 'adapt_optim_wrapper')}
    return str(tmp), str(config), ckpt, dict(stock, type='EncoderDecoder')


def _env(tmp):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env['PYTHONPATH'] = os.pathsep.join([tmp, env.get('PYTHONPATH', '')])
    return env


def _probed(config, out, stock_model=None, **probe):
    """The config plus the probe hook writing to ``out``; with ``stock_model``, that plain
    EncoderDecoder adapted by a STAGHook instead of the TTAEncoderDecoder."""
    os.makedirs(out, exist_ok=True)
    path = osp.join(out, 'probed.py')
    hooks = [f"dict(type='DistProbe', out={out!r}, **{probe!r})"]
    lines = [f'_base_ = [{config!r}]']
    if stock_model is not None:
        lines.append(f'model = dict(_delete_=True, **{stock_model!r})')
        hooks.insert(0, "dict(type='STAGHook', method=dict(type='Tent', optim_wrapper=dict("
                        "optimizer=dict(type='Adam', lr=1e-3))))")
    lines.append(f"custom_hooks = [{', '.join(hooks)}]")
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def _single(tmp, config, ckpt, out, batch_size, stock_model=None):
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test_tta.py'),
         _probed(config, out, stock_model), ckpt,
         '--work-dir', out, '--cfg-options', f'test_dataloader.batch_size={batch_size}'],
        capture_output=True, text=True, env=_env(tmp), cwd=ROOT, timeout=600)


def _torchrun(tmp, config, ckpt, out, port, stock_model=None, **probe):
    return subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_test_tta.sh'),
         _probed(config, out, stock_model, **probe),
         ckpt, '2', '--work-dir', out, '--cfg-options', 'test_dataloader.batch_size=1'],
        capture_output=True, text=True, env=dict(_env(tmp), PORT=str(port)), cwd=ROOT,
        timeout=600)


@pytest.mark.parametrize('path', ['wrapper', 'hook'])
def test_two_processes_equal_one_process_with_the_batch_doubled(dist_setup, path):
    tmp, config, ckpt, stock = dist_setup
    stock = stock if path == 'hook' else None
    one, two = osp.join(tmp, f'one-{path}'), osp.join(tmp, f'two-{path}')
    proc = _single(tmp, config, ckpt, one, batch_size=2, stock_model=stock)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _torchrun(tmp, config, ckpt, two, port=29611 if path == 'wrapper' else 29613,
                     stock_model=stock)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = torch.load(osp.join(one, 'rank0.pth'), weights_only=True)
    ranks = [torch.load(osp.join(two, f'rank{r}.pth'), weights_only=True) for r in (0, 1)]
    source = torch.load(ckpt, weights_only=True)['state_dict']
    assert any(not torch.equal(single[k], source[k]) for k in source)  # it did adapt
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # identical on both ranks
        torch.testing.assert_close(ranks[0][key], single[key], rtol=1e-5, atol=1e-5)
    # identical weights on both ranks after every step, not only at the end
    sums = [json.load(open(osp.join(two, f'sums{r}.json'))) for r in (0, 1)]
    assert len(sums[0]) == len(sums[1]) == 8 and sums[0] == sums[1]
    # every per-(round, domain) metric equals the single-process one; rank 0 wrote the results
    docs = [json.load(open(osp.join(d, 'tta_results.json'))) for d in (one, two)]
    assert docs[1]['method'] == 'Tent' and docs[1]['regularizers'] == ['STAG']
    assert [r['num_samples'] for r in docs[1]['records']] == [4] * 4
    for a, b in zip(docs[0]['records'], docs[1]['records']):
        assert (a['round'], a['domain']) == (b['round'], b['domain'])
        assert a['mIoU'] == pytest.approx(b['mIoU'], abs=1e-5)


def test_a_failing_rank_ends_the_whole_job_with_its_rank_and_cause(dist_setup):
    tmp, config, ckpt, _ = dist_setup
    proc = _torchrun(tmp, config, ckpt, osp.join(tmp, 'fail'), port=29612, fail_rank=1,
                     fail_at=2)
    assert proc.returncode != 0
    assert 'rank 1 failed: RuntimeError: injected failure for the test' in proc.stderr


@pytest.fixture(scope='module')
def cls_dist_setup(tmp_path_factory):
    """An mmpretrain TTAImageClassifier (ResNet with GroupNorm) on 8 images in 3 classes."""
    import numpy as np
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope
    from PIL import Image
    tmp = tmp_path_factory.mktemp('cls_dist')
    rng = np.random.default_rng(0)
    for i in range(8):
        folder = tmp / 'images' / f'class_{i % 3}'
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f'{i}.png')
    (tmp / 'dist_probe.py').write_text(PROBE)
    model_cfg = dict(
        type='TTAImageClassifier',
        tta_method=dict(type='Tent', regularizers=[dict(type='STAG')]),
        adapt_optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-3)),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=3, mean=[127.5] * 3,
                               std=[64.0] * 3),
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                      out_indices=(3, ), norm_cfg=dict(type='GN', num_groups=2)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64,
                  loss=dict(type='CrossEntropyLoss')))
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(ConfigDict(model_cfg))
    ckpt = str(tmp / 'cls.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    config = tmp / 'cls_tent_stag.py'
    config.write_text(textwrap.dedent(f'''
        _base_ = [{osp.join(ROOT, 'configs', '_base_', 'default_runtime.py')!r}]
        default_scope = 'mmpretrain'
        visualizer = dict(_delete_=True, type='UniversalVisualizer')
        custom_imports = dict(imports=['stag_seg', 'dist_probe'], allow_failed_imports=False)
        model = {model_cfg!r}
        test_dataloader = dict(batch_size=2, num_workers=0,
                               sampler=dict(type='DefaultSampler', shuffle=False),
                               dataset=dict(type='CustomDataset', data_root={str(tmp / 'images')!r},
                                            pipeline=[dict(type='LoadImageFromFile'),
                                                      dict(type='PackInputs')]))
        test_evaluator = dict(type='Accuracy', topk=(1, ))
        test_cfg = dict(type='ContinualTestLoop', domains=[dict(name='images', dataset=dict())],
                        rounds=2, metric_key='accuracy/top1', progress=False)
        env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=60))
        '''))
    return str(tmp), str(config), ckpt


def test_the_classification_path_matches_one_process_too(cls_dist_setup):
    tmp, config, ckpt = cls_dist_setup
    one, two = osp.join(tmp, 'one'), osp.join(tmp, 'two')
    proc = _single(tmp, config, ckpt, one, batch_size=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _torchrun(tmp, config, ckpt, two, port=29614)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = torch.load(osp.join(one, 'rank0.pth'), weights_only=True)
    ranks = [torch.load(osp.join(two, f'rank{r}.pth'), weights_only=True) for r in (0, 1)]
    source = torch.load(ckpt, weights_only=True)['state_dict']
    assert any(not torch.equal(single[k], source[k]) for k in source)
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        torch.testing.assert_close(ranks[0][key], single[key], rtol=1e-5, atol=1e-5)
    docs = [json.load(open(osp.join(d, 'tta_results.json'))) for d in (one, two)]
    assert docs[1]['metric'] == 'accuracy'
    accuracies = [[r['accuracy'] for r in doc['records']] for doc in docs[:2]]
    assert accuracies[0] == accuracies[1]
