"""TTAHook/STAGHook in the stock test flow (Runner.from_cfg(cfg).test()) of MMSeg and mmpretrain."""
import copy
import itertools
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import build_segmentor, tiny_segmentor_cfg
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from PIL import Image

from stag_seg.engine import STAGHook, TTAHook
from stag_seg.methods import collect_norm_params
from stag_seg.structures import NotAdaptableError

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

_RUN_IDS = itertools.count()
TENT = dict(type='Tent', optim_wrapper=dict(optimizer=dict(type='Adam', lr=5e-3)))
NUM_CLS = 3


class _RecordPredictions(Hook):
    """Test-only: keeps what the model predicted for every batch."""
    priority = 'LOWEST'

    def __init__(self):
        self.outputs = []

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for out in outputs:
            pred = out.pred_sem_seg.data if 'pred_sem_seg' in out else out.pred_score
            self.outputs.append(pred.detach().clone())


@pytest.fixture(autouse=True)
def _registered_recorder():
    """``_RecordPredictions`` is in MMEngine's HOOKS during each test of this file only."""
    HOOKS.register_module(module=_RecordPredictions)
    yield
    HOOKS._module_dict.pop(_RecordPredictions.__name__)


def _seg_cfg(tree, tmp_path, model_type='EncoderDecoder', tta_method=None):
    model = tiny_segmentor_cfg(num_classes=19)
    model.pop('adapt_optim_wrapper')
    model.pop('tta_method')
    model['type'] = model_type
    if tta_method is not None:
        model['tta_method'] = tta_method
    cfg = Config(dict(
        default_scope='mmseg', model=model, work_dir=str(tmp_path), randomness=dict(seed=0),
        test_dataloader=dict(
            batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='ACDCDataset', data_root=tree, condition=['fog', 'snow'],
                         pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                                   dict(type='PackSegInputs')])),
        test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        test_cfg=dict(type='TestLoop'), log_level='WARNING'))
    return cfg


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'seg.pth')
    torch.save(dict(state_dict=build_segmentor(num_classes=19).state_dict()), path)
    return path


def _run(cfg, checkpoint, hooks=()):
    cfg = copy.deepcopy(cfg)
    # MMEngine names experiments by the second they start, and two runners of one name share
    # one default scope: a unique name keeps mmseg and mmpretrain runs apart
    cfg.experiment_name = f'test_{next(_RUN_IDS)}'
    cfg.load_from = checkpoint
    cfg.custom_hooks = [*hooks, dict(type='_RecordPredictions')]
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    recorder = next(h for h in runner.hooks if isinstance(h, _RecordPredictions))
    return runner, metrics, recorder.outputs


def test_the_hook_adapts_a_stock_segmentor_like_tta_encoder_decoder(tiny_tree, tmp_path,
                                                                     seg_checkpoint):
    cfg = _seg_cfg(tiny_tree, tmp_path)
    _, plain_metrics, plain = _run(cfg, seg_checkpoint)
    hook = dict(type='STAGHook', method=TENT, mode='loss', weight=1.0)
    runner, metrics, hooked = _run(cfg, seg_checkpoint, [hook])
    wrapped_cfg = _seg_cfg(tiny_tree, tmp_path, 'TTAEncoderDecoder',
                           dict(TENT, regularizers=[dict(type='STAG', mode='loss',
                                                         weight=1.0)]))
    _, wrapped_metrics, wrapped = _run(wrapped_cfg, seg_checkpoint)
    _, _, normed = _run(cfg, seg_checkpoint, [dict(type='TTAHook', method=dict(type='Norm'))])
    assert len(plain) == len(hooked) == len(wrapped) == len(normed) == 6
    assert any(not torch.equal(a, b) for a, b in zip(plain, hooked))
    # predict-then-update: Tent's first prediction is made before any update, so it equals the
    # prediction with test-batch statistics alone (Norm); later ones follow the updates
    assert torch.equal(normed[0], hooked[0])
    assert any(not torch.equal(a, b) for a, b in zip(normed[1:], hooked[1:]))
    for a, b in zip(hooked, wrapped):
        assert torch.equal(a, b)
    assert 'mIoU' in metrics and metrics['mIoU'] == wrapped_metrics['mIoU']
    # only normalization-layer parameters moved, and the model is a stock one again
    source = torch.load(seg_checkpoint, weights_only=True)['state_dict']
    adapted = runner.model.state_dict()
    changed = {k for k in source if not torch.equal(source[k], adapted[k])}
    assert changed and changed <= set(collect_norm_params(runner.model)[1])
    assert 'test_step' not in vars(runner.model) and 'tta_method' not in vars(runner.model)


def test_a_run_without_the_hook_is_untouched_by_an_earlier_hooked_run(tiny_tree, tmp_path,
                                                                       seg_checkpoint):
    cfg = _seg_cfg(tiny_tree, tmp_path)
    _, _, before = _run(cfg, seg_checkpoint)
    _run(cfg, seg_checkpoint, [dict(type='TTAHook', method=TENT)])
    runner, _, after = _run(cfg, seg_checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(p.requires_grad for p in runner.model.parameters())


def test_final_state_reset_restores_the_source_and_save_adapted_writes_the_weights(
        tiny_tree, tmp_path, seg_checkpoint):
    cfg = _seg_cfg(tiny_tree, tmp_path)
    hook = dict(type='TTAHook', method=TENT, final_state='reset', save_adapted=True)
    runner, _, _ = _run(cfg, seg_checkpoint, [hook])
    source = torch.load(seg_checkpoint, weights_only=True)['state_dict']
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, source[key]), key
    saved = torch.load(osp.join(str(tmp_path), 'adapted_weights.pth'), weights_only=True)
    assert saved['meta'] == dict(method='Tent', regularizers=[])
    assert any(not torch.equal(v, source[k]) for k, v in saved['state_dict'].items())
    # modes and requires_grad are what they were before the test
    assert all(p.requires_grad for p in runner.model.parameters())


def test_two_hooks_cannot_be_stacked(tiny_tree, tmp_path, seg_checkpoint):
    cfg = _seg_cfg(tiny_tree, tmp_path)
    hooks = [dict(type='TTAHook', method=TENT), dict(type='STAGHook', method=TENT)]
    with pytest.raises(RuntimeError, match='2 TTA hooks .* would adapt the same model'):
        _run(cfg, seg_checkpoint, hooks)


def test_a_self_adapting_model_with_a_hook_is_refused(tiny_tree, tmp_path, seg_checkpoint):
    cfg = _seg_cfg(tiny_tree, tmp_path, 'TTAEncoderDecoder', dict(type='Source'))
    with pytest.raises(RuntimeError, match='already adapts itself'):
        _run(cfg, seg_checkpoint, [dict(type='TTAHook', method=TENT)])


def test_models_without_a_tappable_classifier_are_refused():
    from stag_seg.methods import build_method
    from stag_seg.models import build_adapter
    tent = build_method(dict(type='Tent'), dict(optimizer=dict(type='SGD', lr=0.1)))
    with pytest.raises(NotAdaptableError, match='neither an MMSeg segmentor .* nor an mmpretrain'):
        build_adapter(torch.nn.Sequential(torch.nn.Linear(2, 2)), tent)
    model = build_segmentor()
    del model.decode_head.conv_seg
    with pytest.raises(NotAdaptableError, match='has no conv_seg layer'):
        build_adapter(model, tent).attach()


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(method='Tent'), TypeError, "TTAHook.method must be a dict with a 'type'"),
    (dict(method=TENT, final_state='restore'), ValueError, 'TTAHook.final_state must be one of'),
    (dict(method=dict(type='Tent')), ValueError, 'needs optim_wrapper'),
])
def test_bad_hook_configs_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        TTAHook(**kwargs)


def test_stag_hook_is_a_tta_hook_with_stag_first():
    from stag_seg.methods import build_method
    from stag_seg.stag import STAG
    hook = STAGHook(method=dict(TENT, regularizers=[]), mode='loss', weight=2.0, space='logit',
                    final_state='reset')
    assert hook.final_state == 'reset'  # TTAHook's own argument is not taken for STAG's
    assert hook.method_cfg['regularizers'] == [dict(type='STAG', mode='loss', weight=2.0,
                                                    space='logit')]
    stag = build_method(hook.method_cfg).regularizers[0]
    # the options not given keep STAG's own defaults, written once, in its signature
    assert (stag.weight, stag.space, stag.form, stag.temperature, stag.use_bias,
            stag.anchor_mode) == (2.0, 'logit', 'gram', 1.0, True, 'frozen')
    assert STAG.defaults() == dict(weight=0.5, space='feature', gradient='entropy',
                                   weighting='entropy', form='gram', temperature=1.0,
                                   anchor_temperature=None, use_bias=True, anchors='frozen',
                                   eps=1e-12, mode='reweight', reweight='smooth', threshold=0.0,
                                   power=1.0)


# ---------------------------------------------------------------------------- mmpretrain
def _image_folder(root, per_class=4, size=32):
    rng = np.random.default_rng(0)
    for c in range(NUM_CLS):
        folder = osp.join(root, f'class_{c}')
        import os
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            img[..., c] = np.clip(img[..., c].astype(int) + 80, 0, 255)  # some class signal
            Image.fromarray(img).save(osp.join(folder, f'{i}.png'))
    return root


def _cls_cfg(root, tmp_path, model_type='ImageClassifier', tta_method=None):
    model = dict(
        type=model_type,
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=NUM_CLS, to_rgb=True,
                               mean=[127.5] * 3, std=[64.0] * 3),
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLS, in_channels=64,
                  loss=dict(type='CrossEntropyLoss')))
    if tta_method is not None:
        model['tta_method'] = tta_method
    return Config(dict(
        default_scope='mmpretrain', model=model, work_dir=str(tmp_path), randomness=dict(seed=0),
        test_dataloader=dict(
            batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='CustomDataset', data_root=root,
                         pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])),
        test_evaluator=dict(type='Accuracy', topk=(1, )),
        test_cfg=dict(type='TestLoop'), log_level='WARNING'))


@pytest.fixture(scope='module')
def cls_setup(tmp_path_factory):
    import stag_seg  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    root = _image_folder(str(tmp_path_factory.mktemp('images')))
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(_cls_cfg(root, '.').model)
    with torch.no_grad():  # BN statistics unlike the test data's, as after training elsewhere
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
    path = str(tmp_path_factory.mktemp('ckpt') / 'cls.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return root, path


def test_the_hook_adapts_a_stock_mmpretrain_classifier_like_tta_image_classifier(
        cls_setup, tmp_path):
    root, ckpt = cls_setup
    cfg = _cls_cfg(root, tmp_path)
    _, plain_metrics, plain = _run(cfg, ckpt)
    runner, metrics, hooked = _run(cfg, ckpt, [dict(type='STAGHook', method=TENT)])
    wrapped_cfg = _cls_cfg(root, tmp_path, 'TTAImageClassifier',
                           dict(TENT, regularizers=[dict(type='STAG')]))
    _, wrapped_metrics, wrapped = _run(wrapped_cfg, ckpt)
    assert len(plain) == len(hooked) == len(wrapped) == 12
    assert any(not torch.equal(a, b) for a, b in zip(plain, hooked))
    for a, b in zip(hooked, wrapped):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert 'accuracy/top1' in metrics
    assert metrics['accuracy/top1'] == wrapped_metrics['accuracy/top1']
    source = torch.load(ckpt, weights_only=True)['state_dict']
    changed = {k for k, v in runner.model.state_dict().items() if not torch.equal(v, source[k])}
    assert changed and changed <= set(collect_norm_params(runner.model)[1])


def test_the_classifier_path_matches_an_independent_tent(cls_setup, tmp_path):
    """Tent written out by hand (entropy of the head's logits, BN affine parameters, Adam)."""
    from mmpretrain.registry import MODELS
    root, ckpt = cls_setup
    cfg = _cls_cfg(root, tmp_path)
    _, _, hooked = _run(cfg, ckpt, [dict(type='TTAHook', method=TENT)])
    cfg = copy.deepcopy(cfg)
    cfg.experiment_name = f'test_{next(_RUN_IDS)}'
    runner = Runner.from_cfg(cfg)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'])
    model.eval()
    params = []
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False
            params += [m.weight, m.bias]
    optim = torch.optim.Adam(params, lr=5e-3)
    expected = []
    for batch in runner.test_dataloader:
        data = model.data_preprocessor(batch, False)
        logits = model.head(model.extract_feat(data['inputs']))
        expected += list(logits.detach().softmax(1))
        loss = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert len(expected) == len(hooked)
    for a, b in zip(hooked, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('config, registry, family', [
    ('configs/hooks/segformer_mit-b0_cityscapes_stag-hook.py', 'mmseg', 'segformer'),
    ('configs/hooks/resnet50_in1k_stag-hook.py', 'mmpretrain', 'resnet'),
])
def test_example_hook_configs_add_only_imports_hooks_and_data(config, registry, family):
    from conftest import ROOT
    from mmengine.registry import DefaultScope

    from stag_seg.methods import build_method
    from stag_seg.models import build_adapter
    cfg = Config.fromfile(osp.join(ROOT, config))
    assert cfg.custom_imports['imports'] == ['stag_seg']
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert isinstance(hook, STAGHook) and hook.method_cfg['regularizers'][0]['type'] == 'STAG'
    with open(osp.join(ROOT, config)) as f:
        lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith('#')]
    assert lines[0].startswith(f"_base_ = ['{registry}::{family}/")
    keys = {ln.split('=')[0].strip() for ln in lines if not ln.startswith((' ', ')', ']'))}
    assert keys == {'_base_', 'custom_imports', 'custom_hooks', 'test_dataloader'}
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)  # the stock model type, tapped as it is
    assert type(model).__name__ in ('EncoderDecoder', 'ImageClassifier')
    num_classes = 19 if registry == 'mmseg' else 1000
    adapter = build_adapter(model, build_method(dict(type='Tent'),
                                                dict(optimizer=dict(type='SGD', lr=0.1))))
    assert adapter.family == ('segmentor' if registry == 'mmseg' else 'classifier')
    assert adapter.make_tap().weight.shape[0] == num_classes


def test_the_hook_drives_the_continual_loop_with_episodic_resets(tiny_tree, tmp_path,
                                                                  seg_checkpoint):
    import json
    cfg = _seg_cfg(tiny_tree, tmp_path)
    cfg.test_cfg = dict(type='ContinualTestLoop', domains=['fog', 'snow'], rounds=2,
                        episodic=True, progress=False)
    _, metrics, preds = _run(cfg, seg_checkpoint, [dict(type='STAGHook', method=TENT)])
    with open(osp.join(str(tmp_path), 'tta_results.json')) as f:
        doc = json.load(f)
    assert doc['method'] == 'Tent' and doc['regularizers'] == ['STAG'] and doc['episodic']
    assert len(doc['records']) == 4 and 'mean/mIoU' in metrics
    # episodic: every visit of a domain starts from the source, so both rounds predict alike
    assert all(torch.equal(a, b) for a, b in zip(preds[:6], preds[6:]))


def test_the_show_hook_draws_a_labelled_grid_for_a_classifier(cls_setup, tmp_path,
                                                              monkeypatch):
    """Under the stock test loop: round 1, domain `test`; the drawn labels are the scored ones."""
    import cv2

    from stag_seg.engine import show_hook
    root, ckpt = cls_setup
    drawn = []
    original = show_hook.classification_grid

    def record(images, preds, gts, classes, path, **kwargs):
        drawn.append(dict(images=list(images), preds=list(preds), gts=list(gts),
                          classes=classes, path=path))
        return original(images, preds, gts, classes, path, **kwargs)

    monkeypatch.setattr(show_hook, 'classification_grid', record)
    runner, _, scores = _run(_cls_cfg(root, tmp_path), ckpt, [
        dict(type='STAGHook', method=TENT), dict(type='TTAShowHook', show_dir='show',
                                                  num_images=6)])
    (grid, ) = drawn
    assert grid['path'] == osp.join(str(tmp_path), 'show', 'test', 'grid_r01.png')
    assert grid['preds'] == [int(s.argmax()) for s in scores[:6]]
    dataset = runner.test_dataloader.dataset
    assert grid['gts'] == [dataset.get_gt_labels()[i] for i in range(6)]
    assert grid['classes'] == dataset.metainfo['classes']
    # the original pictures, in RGB (the generator brightened the channel of its class)
    for image, gt in zip(grid['images'], grid['gts']):
        assert image.shape == (32, 32, 3) and image.mean((0, 1)).argmax() == gt
    assert cv2.imread(grid['path']).shape[:2] == (510, 880)  # 2 rows of 4 at 100 dpi
