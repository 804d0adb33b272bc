"""Faithful baselines: each behaviour a published protocol fixes, checked against an
independent implementation of what the reference code does (written here, in plain PyTorch)."""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, build_segmentor, state_copy
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from stag_seg.methods import build_method

# several seconds each (runners, processes, whole streams): make test-fast leaves them out
pytestmark = pytest.mark.slow

INPUT = (64, 128)      # what the network sees (as ACDC's 540 x 960)
ORIGINAL = (128, 256)  # what is scored (as ACDC's 1080 x 1920)
SLIDE = dict(mode='slide', crop_size=(160, 160), stride=(120, 120))  # one crop: the image


def _batch(seed=0, original=ORIGINAL, size=INPUT):
    """One preprocessed-size image whose predictions are scored at ``original``."""
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (3, *size), generator=g, dtype=torch.uint8)
    meta = dict(ori_shape=original, img_shape=size, pad_shape=size, img_path=f'{seed}.png')
    return dict(inputs=[img], data_samples=[SegDataSample(metainfo=meta)])


def _published_tent(**kwargs):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/tta/tent-pl_cotta-seg.py')).tta_method
    cfg.pop('_delete_')
    cfg.update(kwargs)
    return cfg


# ------------------------------------------------------------------------------------------
# Tent as the CoTTA segmentation code runs it
# ------------------------------------------------------------------------------------------


def test_published_tent_first_prediction_is_the_source_prediction_bit_for_bit():
    source = build_segmentor(test_cfg=SLIDE)
    tent = build_segmentor(_published_tent(), test_cfg=SLIDE,
                           adapt_optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-2)))
    batch = _batch()
    with torch.no_grad():
        expected = source.test_step(copy.deepcopy(batch))[0].seg_logits.data
    got = tent.test_step(copy.deepcopy(batch))[0].seg_logits.data
    assert torch.equal(got, expected)
    # the paper's Tent (BatchNorm on test-batch statistics) already differs on its first batch
    paper = build_segmentor(dict(type='Tent', loss='pseudo_label'), test_cfg=SLIDE)
    assert not torch.equal(paper.test_step(copy.deepcopy(batch))[0].seg_logits.data, expected)


def _reference_tent_steps(model, batches, lr):
    """The reference's ``single_gpu_tent``, in plain PyTorch: the whole model in eval mode; the
    label is the argmax of the slide prediction resized to the original size; the loss is the
    cross entropy of a whole-image forward's decoder logits resized (once) to that size,
    averaged over all pixels; Adam on the normalization layers' affine parameters."""
    model.eval()
    params = [p for m in model.modules() if isinstance(m, (nn.LayerNorm, _BatchNorm))
              for p in (m.weight, m.bias)]
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    predictions = []
    for batch in batches:
        data = model.data_preprocessor(copy.deepcopy(batch), False)
        x, meta = data['inputs'], dict(data['data_samples'][0].metainfo)
        with torch.no_grad():
            seg = model.slide_inference(x, [dict(meta)])
            seg = F.interpolate(seg, size=ORIGINAL, mode='bilinear', align_corners=False)
        predictions.append(seg.argmax(1))
        logits = model.decode_head.forward(model.extract_feat(x))
        logits = F.interpolate(logits, size=ORIGINAL, mode='bilinear', align_corners=False)
        F.cross_entropy(logits, seg.argmax(1)).backward()
        optimizer.step()
        optimizer.zero_grad()
    return predictions


def _compare_with_reference(slide, num_batches):
    """The toolkit's published Tent and the reference's steps on the same batches; returns
    the adapted toolkit model after checking predictions and weights."""
    batches = [_batch(seed) for seed in range(num_batches)]
    reference = build_segmentor(test_cfg=slide)
    expected = _reference_tent_steps(reference, batches, lr=1e-2)
    tent = build_segmentor(_published_tent(), test_cfg=slide,
                           adapt_optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-2)))
    got = [tent.test_step(copy.deepcopy(b))[0].pred_sem_seg.data for b in batches]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    ours = tent.state_dict()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6, msg=key)
    return tent


def test_published_tent_matches_an_independent_reference_implementation():
    tent = _compare_with_reference(SLIDE, num_batches=3)
    assert not torch.equal(tent.state_dict()['decode_head.fusion_conv.bn.weight'],
                           build_segmentor().state_dict()['decode_head.fusion_conv.bn.weight'])


def test_published_tent_with_several_crops_trains_on_a_whole_image_forward():
    _compare_with_reference(dict(mode='slide', crop_size=(48, 48), stride=(32, 32)),  # 2 x 4
                            num_batches=2)


def test_the_original_resolution_needs_one_unpadded_size_per_batch():
    tent = build_segmentor(_published_tent(), test_cfg=SLIDE)
    a, b = _batch(0), _batch(1, original=(40, 64))
    batch = dict(inputs=a['inputs'] + b['inputs'],
                 data_samples=a['data_samples'] + b['data_samples'])
    with pytest.raises(ValueError, match='one original size per batch'):
        tent.test_step(batch)


def test_tent_options_are_checked():
    with pytest.raises(ValueError, match="resolution must be 'decoder' or 'original'"):
        build_method(dict(type='Tent', resolution='input',
                          optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))
    with pytest.raises(ValueError, match="resolution='original' is an option of Tent"):
        build_method(dict(type='SAR', resolution='original',
                          optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))
    with pytest.raises(TypeError, match='list of module names'):
        build_method(dict(type='DeYO', frozen_modules='backbone.layer4',
                          optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))


# ------------------------------------------------------------------------------------------
# optimizer lifetime: a fresh optimizer at every domain visit
# ------------------------------------------------------------------------------------------


def _stream_run(tiny_tree, tmp_path, optimizer_reset):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from conftest import tiny_segmentor_cfg

    class AdamSteps(Hook):
        """Adam's step count of the adapted parameters before each batch."""
        def __init__(self):
            self.steps = []

        def before_test_iter(self, runner, batch_idx, data_batch=None):
            method = runner.model.tta_method
            if not method.configured:
                self.steps.append(0)
                return
            state = method.optim_wrapper.optimizer.state
            self.steps.append(int(next(iter(state.values()))['step']) if state else 0)

    init_default_scope('mmseg')
    model = tiny_segmentor_cfg(dict(type='Tent'), num_classes=19)
    model['adapt_optim_wrapper'] = dict(optimizer=dict(type='Adam', lr=1e-3))
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/synthetic_acdc.py'))
    cfg.merge_from_dict(dict(default_scope='mmseg', model=model, log_level='WARNING',
                             work_dir=str(tmp_path / optimizer_reset),
                             experiment_name=f'optimizer_reset_{optimizer_reset}'))
    cfg.test_dataloader.dataset.data_root = tiny_tree
    cfg.test_dataloader.num_workers = 0
    cfg.test_cfg = dict(type='ContinualTestLoop', domains=['fog', 'night'], rounds=2,
                        progress=False, optimizer_reset=optimizer_reset)
    runner = Runner.from_cfg(cfg)
    hook = AdamSteps()
    runner.register_hook(hook)
    runner.test()
    return hook.steps


def test_the_optimizer_is_fresh_at_every_domain_visit_when_asked(tiny_tree, tmp_path):
    # 3 images per domain, 2 domains, 2 rounds: Adam's count restarts at every visit
    assert _stream_run(tiny_tree, tmp_path, 'domain') == [0, 1, 2] * 4
    assert _stream_run(tiny_tree, tmp_path, 'never') == list(range(12))


def test_optimizer_reset_is_checked(tiny_tree, tmp_path):
    with pytest.raises(ValueError, match="optimizer_reset must be one of"):
        _stream_run(tiny_tree, tmp_path, 'round')


def test_the_acdc_protocol_resets_the_optimizer_per_domain_and_sorts_its_images():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/acdc/segformer-b5_tent.py'))
    assert cfg.test_cfg.optimizer_reset == 'domain'
    method = cfg.model.tta_method
    assert (method.loss, method.batch_stats, method.resolution) == (
        'pseudo_label', False, 'original')
    assert Config.fromfile(osp.join(ROOT, 'configs/acdc_segformer_tent.py')).model.tta_method \
        == method
    entropy = Config.fromfile(osp.join(ROOT, 'configs/acdc/segformer-b5_tent-entropy.py'))
    assert entropy.model.tta_method.loss == 'entropy'
    cotta = Config.fromfile(osp.join(ROOT, 'configs/acdc/segformer-b5_cotta.py'))
    assert cotta.model.tta_method.view_source == 'original'
    assert any(t['type'] == 'KeepOriginalImage' for t in cotta.test_dataloader.dataset.pipeline)


# ------------------------------------------------------------------------------------------
# CoTTA's teacher views
# ------------------------------------------------------------------------------------------


def _original_image(height=ORIGINAL[0], width=ORIGINAL[1], seed=0):
    """A generated photo-like BGR image with detail at every scale."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0.8)


@pytest.mark.parametrize('scale', [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
def test_cotta_view_is_the_pipeline_resize_of_the_original_image(scale):
    from mmseg.datasets.transforms import Resize  # noqa: F401  (the registered one)
    from mmseg.registry import TRANSFORMS
    init_default_scope('mmseg')
    original = _original_image(108, 192)
    cotta = build_method(dict(type='CoTTA', view_source='original',
                              optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))
    view = cotta.original_view(original, scale, False, (54, 96)).numpy().transpose(1, 2, 0)
    # the reference's multi-scale pipeline: Resize to (int(96 r), int(54 r)), keep ratio
    resize = TRANSFORMS.build(dict(type='Resize', scale=(int(96 * scale), int(54 * scale)),
                                   keep_ratio=True))
    expected = resize(dict(img=original.copy(), img_shape=original.shape[:2]))['img']
    np.testing.assert_array_equal(view, expected)
    # and an independent computation of the same: OpenCV bilinear to the kept-ratio size
    factor = min(max(96 * scale, 54 * scale) // 1 / 192, min(96 * scale, 54 * scale) // 1 / 108)
    size = (int(192 * factor + 0.5), int(108 * factor + 0.5))
    np.testing.assert_array_equal(view, cv2.resize(original, size,
                                                   interpolation=cv2.INTER_LINEAR))
    flipped = cotta.original_view(original, scale, True, (54, 96)).numpy().transpose(1, 2, 0)
    np.testing.assert_array_equal(flipped, expected[:, ::-1])


def _cotta_segmentor(view_source='original', **kwargs):
    method = dict(type='CoTTA', view_source=view_source, restore_prob=0.0, **kwargs)
    return build_segmentor(method, test_cfg=dict(mode='slide', crop_size=(48, 48),
                                                 stride=(32, 32)))


def _cotta_batch(seed=0):
    """An INPUT-sized image made from an ORIGINAL-sized one by the pipeline's resize."""
    from mmseg.structures import SegDataSample
    original = _original_image(seed=seed)
    small = cv2.resize(original, INPUT[::-1], interpolation=cv2.INTER_LINEAR)
    meta = dict(ori_shape=ORIGINAL, img_shape=INPUT, pad_shape=INPUT, ori_img=original,
                img_path=f'{seed}.png')
    img = torch.from_numpy(small.transpose(2, 0, 1).copy())
    return dict(inputs=[img], data_samples=[SegDataSample(metainfo=meta)])


def test_cotta_teacher_runs_slide_inference_on_every_view_and_averages_at_the_original_size(
        monkeypatch):
    from stag_seg.models import segmentor_logits
    from stag_seg.structures import StepContext
    model = _cotta_segmentor()
    model.tta_adapter.attach()
    method = model.tta_method
    data = model.data_preprocessor(_cotta_batch(), False)
    metas = [dict(s.metainfo) for s in data['data_samples']]
    ctx = StepContext(data['inputs'], model, segmentor_logits, model.tta_adapter.tap,
                      metas=metas)
    calls = []
    slide = type(model).slide_inference

    def counting(self, inputs, batch_img_metas):
        calls.append((id(self), tuple(inputs.shape[2:])))
        return slide(self, inputs, batch_img_metas)

    monkeypatch.setattr(type(model), 'slide_inference', counting)
    with torch.no_grad():
        anchor, standard, averaged = method._original_views(ctx)
    monkeypatch.setattr(type(model), 'slide_inference', slide)
    (h_in, w_in), (h_ori, w_ori) = INPUT, ORIGINAL
    sizes = [(int(h_in * s + .5), int(w_in * s + .5)) for s in method.scales for _ in (0, 1)]
    assert [shape for who, shape in calls if who == id(method.teacher)] == sizes  # 14 views
    assert [shape for who, shape in calls if who == id(method.anchor)] == [INPUT]
    # independently: each view resized from the original, normalised, slide inference,
    # flipped back, softmax at the original size, mean over the 14 views
    original = metas[0]['ori_img']
    mean, std = model.data_preprocessor.mean, model.data_preprocessor.std
    total, plain = 0, None
    for scale in method.scales:
        for flip in (False, True):
            h, w = int(h_in * scale), int(w_in * scale)
            factor = min(max(h, w) / w_ori, min(h, w) / h_ori)
            view = cv2.resize(original, (int(w_ori * factor + .5), int(h_ori * factor + .5)),
                              interpolation=cv2.INTER_LINEAR)
            view = view[:, ::-1] if flip else view
            x = (torch.from_numpy(view.transpose(2, 0, 1).copy()).float()[None] - mean) / std
            with torch.no_grad():
                logits = slide(method.teacher, x, [dict(img_shape=x.shape[2:])])
            probs = F.interpolate(logits, size=ORIGINAL, mode='bilinear').softmax(1)
            probs = probs.flip(-1) if flip else probs
            plain = probs if scale == 1 and not flip else plain
            total = total + probs
    torch.testing.assert_close(averaged, total / 14, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(standard, plain, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        logits = slide(method.anchor, data['inputs'], [dict(img_shape=INPUT)])
    torch.testing.assert_close(anchor, F.interpolate(logits, size=ORIGINAL, mode='bilinear')
                               .softmax(1), rtol=1e-5, atol=1e-6)


def test_cotta_with_original_views_predicts_and_trains_at_the_original_size():
    model = _cotta_segmentor()
    out = model.test_step(_cotta_batch())[0]
    assert out.seg_logits.data.shape[1:] == ORIGINAL
    assert out.pred_sem_seg.data.shape[1:] == ORIGINAL
    missing = _cotta_batch(1)
    missing['data_samples'][0].set_metainfo(dict(ori_img=None))
    with pytest.raises(KeyError, match='KeepOriginalImage'):
        _cotta_segmentor().test_step(missing)


def test_keep_original_image_survives_the_resize_into_the_data_sample(tmp_path):
    from mmcv.transforms import Compose
    from mmseg.registry import TRANSFORMS
    init_default_scope('mmseg')
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, _original_image(108, 192))
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/acdc.py'))
    pipeline = [t for t in cfg.original_views_pipeline if t['type'] != 'LoadAnnotations']
    packed = Compose([TRANSFORMS.build(t) for t in pipeline])(dict(img_path=path))
    meta = packed['data_samples'].metainfo
    assert packed['inputs'].shape[1:] == (540, 960)  # resized, while the original stays
    np.testing.assert_array_equal(meta['ori_img'], cv2.imread(path))


# ------------------------------------------------------------------------------------------
# NVlabs' SegFormer-B5: its LayerNorm eps
# ------------------------------------------------------------------------------------------


def test_the_nvlabs_b5_backbone_has_the_nvlabs_layernorm_eps():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(ROOT, 'configs/acdc/segformer-b5_source.py'))
    backbone = MODELS.build(cfg.model.backbone)
    eps = {name: m.eps for name, m in backbone.named_modules() if isinstance(m, nn.LayerNorm)}
    patch = [n for n in eps if n.endswith('.0.norm') and n.count('.') == 3]  # layers.i.0
    spatial = [n for n in eps if n.endswith('attn.norm')]
    assert len(patch) == 4 and len(spatial) == 3 + 6 + 40  # stages 1-3 reduce: sr 8, 4, 2
    assert all(eps[n] == 1e-5 for n in patch + spatial)
    assert all(e == 1e-6 for n, e in eps.items() if n not in patch + spatial)
    assert len(eps) == 4 + 49 + 2 * 52 + 4  # and block norm1/norm2, stage norms: 1e-6
    # MMSeg's own MiT (the mmseg-checkpoint configs) keeps 1e-6 everywhere
    stock = Config.fromfile(osp.join(ROOT, 'configs/acdc/segformer-b5-mmseg_source.py'))
    assert {m.eps for m in MODELS.build(stock.model.backbone).modules()
            if isinstance(m, nn.LayerNorm)} == {1e-6}


# ------------------------------------------------------------------------------------------
# SAR, DeYO and CoTTA on classifiers
# ------------------------------------------------------------------------------------------


def _classifier(kind='resnet'):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    if kind == 'vit':
        backbone = dict(type='VisionTransformer',
                        arch=dict(embed_dims=16, num_layers=3, num_heads=2,
                                  feedforward_channels=32),
                        img_size=16, patch_size=4, out_type='cls_token', final_norm=True)
        head = dict(type='VisionTransformerClsHead', num_classes=5, in_channels=16)
        neck = None
    else:
        backbone = dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ),
                        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True))
        head = dict(type='LinearClsHead', num_classes=5, in_channels=512)
        neck = dict(type='GlobalAveragePooling')
    model = MODELS.build(dict(
        type='TTAImageClassifier', tta_method=dict(type='Source'),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=5),
        backbone=backbone, neck=neck, head=head))
    return model.eval()


def test_sar_keeps_the_base_optimizers_momentum_through_a_reset():
    from mmpretrain.structures import DataSample
    from stag_seg.models import build_adapter
    model = _classifier()
    method = build_method(dict(
        type='SAR', e0=10.0, reset_threshold=1e9,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-3, momentum=0.9))))
    # another method on the same model: a new adapter attaches it
    model.tta_method, model.tta_adapter = method, build_adapter(model, method)
    source = state_copy(model)
    g = torch.Generator().manual_seed(0)
    momentum = None
    for step in range(2):
        x = torch.randn(4, 3, 32, 32, generator=g) * 50 + 120
        model.test_step(dict(inputs=x, data_samples=[DataSample() for _ in range(4)]))
        assert method.num_resets == step + 1  # the threshold makes every step reset
        params = method.optim_wrapper.param_groups[0]['params']
        buffers = [method.optim_wrapper.optimizer.state[p]['momentum_buffer'].clone()
                   for p in params]
        if momentum is not None:  # they carried on: 0.9 * old + the new gradient
            assert any(not torch.equal(a, 0 * a) for a in momentum)
            assert any(not torch.equal(a, b) for a, b in zip(buffers, momentum))
        momentum = buffers
        for key, value in source.items():  # while the weights are back at the source
            assert torch.equal(model.state_dict()[key], value), key
    method.reset()  # a full reset (episodic protocols) clears it
    assert not method.optim_wrapper.optimizer.state


def test_deyo_respects_frozen_modules():
    model = _classifier()
    method = build_method(dict(type='DeYO', frozen_modules=['backbone.layer4'],
                               optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-3))))
    method.configure(model)
    assert method.param_names and not any('layer4' in n for n in method.param_names)
    assert any(n.startswith('backbone.layer3') for n in method.param_names)
    assert not any(p.requires_grad for p in model.backbone.layer4.parameters())
    deyo = Config.fromfile(osp.join(ROOT, 'configs/imagenet_c/vit-b16_deyo.py'))
    assert deyo.model.tta_method.frozen_modules == [
        'backbone.layers.9', 'backbone.layers.10', 'backbone.layers.11', 'backbone.ln1']
    for name in ('resnet50_deyo', 'resnet50-gn_deyo', 'resnet50_deyo_stag'):
        cfg = Config.fromfile(osp.join(ROOT, f'configs/imagenet_c/{name}.py'))
        assert cfg.model.tta_method.frozen_modules == ['backbone.layer4'], name
    with pytest.raises(KeyError, match="no module 'backbone.layer9'"):
        build_method(dict(type='DeYO', frozen_modules=['backbone.layer9'],
                          optim_wrapper=dict(optimizer=dict(type='SGD', lr=1)))
                     ).configure(_classifier())


def test_cotta_trains_and_restores_only_weights_and_biases_on_a_vit():
    model = _classifier('vit')
    method = build_method(dict(type='CoTTA', views='random', num_views=2, restore_prob=1.0,
                               optim_wrapper=dict(optimizer=dict(type='SGD', lr=1.0))))
    method.configure(model, logits_fn=lambda m, x: m.head(m.extract_feat(x)))
    names = set(method.param_names)
    assert 'backbone.cls_token' not in names and 'backbone.pos_embed' not in names
    expected = {n for n, _ in model.named_parameters()
                if n.rsplit('.', 1)[-1] in ('weight', 'bias')}
    assert names == expected and len(names) == len(list(model.parameters())) - 2
    assert not model.backbone.cls_token.requires_grad
    assert not model.backbone.pos_embed.requires_grad


# ------------------------------------------------------------------------------------------
# the learning rate at small batches: each method's rule
# ------------------------------------------------------------------------------------------


def test_scaled_lr_follows_the_rules_of_the_sar_and_deyo_scripts():
    from stag_seg.engine import scaled_lr
    # main.py: args.lr = (0.00025 / 64) * bs * 2 if bs < 32 else 0.00025 (ResNets) ...
    for bs in (1, 2, 16, 31):
        assert scaled_lr(0.00025, bs) == pytest.approx(0.00025 / 64 * bs * 2)
    for bs in (32, 64, 128):
        assert scaled_lr(0.00025, bs) == 0.00025
    # ... (0.001 / 64) * bs (the ViT), and 2 * args.lr at batch size 1 for SAR and DeYO
    assert scaled_lr(0.001, 16, below_32=1.0) == pytest.approx(0.001 / 64 * 16)
    assert scaled_lr(0.00025, 1, at_1=2.0) == pytest.approx(1.5625e-05)
    assert scaled_lr(0.001, 1, below_32=1.0, at_1=2.0) == pytest.approx(3.125e-05)
    assert scaled_lr(0.00025, 2, at_1=2.0) == pytest.approx(0.00025 / 64 * 2 * 2)
    with pytest.raises(ValueError, match='batch sizes must be >= 1'):
        scaled_lr(0.1, 0)
    vit = Config.fromfile(osp.join(ROOT, 'configs/digits_c/vit-tiny_train.py'))
    assert vit.lr_scaling == dict(below_32=1.0)


def test_cotta_trains_every_parameter_of_a_segformer_as_the_segmentation_code_does():
    model = build_segmentor(dict(type='CoTTA'))
    model.tta_adapter.attach()
    assert set(model.tta_method.param_names) == {n for n, _ in model.named_parameters()}
    assert any(n.endswith('in_proj_weight') for n in model.tta_method.param_names)
