"""Models beyond the plain encoder-decoder: BatchNorm layers that see one value per channel at
batch size 1 (pooling branches), cascade decoders (OCRNet, PointRend) and classifiers whose
backbones freeze stages or hold the classifier."""
import copy

import pytest
import torch
from conftest import NUM_CLASSES, make_batch, tiny_segmentor_cfg
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from stag_seg.methods import build_method
from stag_seg.models import build_adapter
from stag_seg.structures import NotAdaptableError, step_stats

OPTIM = dict(optimizer=dict(type='SGD', lr=0.05))
# every method that puts BatchNorm on test-batch statistics
BATCH_STAT_METHODS = [
    dict(type='Norm'),
    dict(type='Tent', regularizers=[dict(type='STAG')]),
    dict(type='EATA', regularizers=[dict(type='STAG')]),
    dict(type='SAR', regularizers=[dict(type='STAG')]),
    dict(type='DeYO', patch_len=2, regularizers=[dict(type='STAG')]),
    dict(type='CoTTA', batch_stats=True, scales=(1.0, ), regularizers=[dict(type='STAG')]),
]


def _build(cfg, seed=0):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(cfg))
    with torch.no_grad():  # source statistics unlike the test images', as after training
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def aspp_cfg(tta_method=None, **kwargs):
    """The tiny MiT with MMSeg's ASPPHead: its image pooling normalises a 1x1 map with BN."""
    cfg = tiny_segmentor_cfg(tta_method)
    cfg['decode_head'] = dict(type='ASPPHead', in_channels=64, in_index=3, channels=8,
                              dilations=(1, 2), num_classes=NUM_CLASSES, dropout_ratio=0.0,
                              norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
                              loss_decode=dict(type='CrossEntropyLoss'))
    if tta_method is None:
        cfg.update(type='EncoderDecoder')
        cfg.pop('tta_method')
        cfg.pop('adapt_optim_wrapper')
    cfg.update(kwargs)
    return cfg


def _pool_bn(model):
    return model.decode_head.image_pool[1].bn


def test_a_pooling_branch_at_batch_size_1_adapts_on_running_statistics():
    method = dict(type='Tent', regularizers=[dict(type='STAG')], optim_wrapper=OPTIM)
    model = _build(aspp_cfg(method))
    bn = _pool_bn(model)
    running = (bn.running_mean.clone(), bn.running_var.clone())
    affine = (bn.weight.detach().clone(), bn.bias.detach().clone())
    batch = make_batch(num=1)
    # what the pooling branch must compute: the layer in eval mode, every other BN on the batch
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, _BatchNorm):
            m.train()
            m.track_running_stats = False
    _pool_bn(ref).eval()
    with torch.no_grad():
        expected = ref.test_step(copy.deepcopy(batch))[0].seg_logits.data
    out = model.test_step(copy.deepcopy(batch))
    torch.testing.assert_close(out[0].seg_logits.data, expected)
    assert 'stag_multiplier' in step_stats(out)
    assert model.tta_method.single_value_fallbacks() == {'decode_head.image_pool.1.bn': 1}
    torch.testing.assert_close(bn.running_mean, running[0], rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, running[1], rtol=0, atol=0)
    assert not torch.equal(bn.weight.detach(), affine[0])  # its affine parameters adapt
    assert not torch.equal(bn.bias.detach(), affine[1])
    assert bn.training  # back on batch statistics for the next input
    # at batch size 2 the layer has two values per channel and uses the batch's statistics
    model.test_step(make_batch(num=2, seed=1))
    assert model.tta_method.single_value_fallbacks() == {'decode_head.image_pool.1.bn': 1}


def test_the_error_policy_names_the_layer():
    method = dict(type='Tent', single_value_bn='error', optim_wrapper=OPTIM)
    model = _build(aspp_cfg(method))
    with pytest.raises(ValueError, match=r"BatchNorm 'decode_head.image_pool.1.bn' gets one value "
                                         r'per channel \(input \(1, 8, 1, 1\)\)'):
        model.test_step(make_batch(num=1))
    with pytest.raises(ValueError, match="single_value_bn must be one of .*, got 'batch'"):
        build_method(dict(type='Tent', single_value_bn='batch'), OPTIM)


def test_releasing_the_method_removes_the_guards():
    model = _build(aspp_cfg())
    adapter = build_adapter(model, build_method(dict(type='Tent'), OPTIM))
    adapter.attach()
    bn = _pool_bn(model)
    assert bn._forward_pre_hooks and bn._forward_hooks
    adapter.detach()
    assert not bn._forward_pre_hooks and not bn._forward_hooks
    assert not bn.training and bn.track_running_stats


@pytest.mark.parametrize('method', BATCH_STAT_METHODS, ids=lambda m: m['type'])
def test_the_wrapper_and_the_hook_path_apply_the_same_policy(method):
    method = dict(method, **({} if method['type'] == 'Norm' else dict(optim_wrapper=OPTIM)))
    wrapped = _build(aspp_cfg(copy.deepcopy(method)))
    plain = _build(aspp_cfg())
    adapter = build_adapter(plain, build_method(copy.deepcopy(method)))  # what TTAHook does
    for seed in range(2):
        batch = make_batch(num=1, seed=seed)
        a = wrapped.test_step(copy.deepcopy(batch))[0].seg_logits.data
        b = adapter.test_step(copy.deepcopy(batch))[0].seg_logits.data
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert wrapped.tta_method.single_value_fallbacks()
    assert adapter.method.single_value_fallbacks() == wrapped.tta_method.single_value_fallbacks()


# ---------------------------------------------------------------------------- cascades
def ocr_cfg(tta_method=None):
    """The tiny MiT under OCRNet's cascade: an FCN head for the soft regions, then OCRHead."""
    cfg = tiny_segmentor_cfg(tta_method)
    common = dict(in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3],
                  input_transform='resize_concat', num_classes=NUM_CLASSES, dropout_ratio=0.0,
                  norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
                  loss_decode=dict(type='CrossEntropyLoss'))
    cfg.update(num_stages=2, decode_head=[
        dict(type='FCNHead', channels=16, kernel_size=1, num_convs=1, concat_input=False,
             **common),
        dict(type='OCRHead', channels=16, ocr_channels=8, **common)])
    if tta_method is None:
        cfg.update(type='CascadeEncoderDecoder')
        cfg.pop('tta_method')
        cfg.pop('adapt_optim_wrapper')
    else:
        cfg['type'] = 'TTACascadeEncoderDecoder'
    return cfg


def test_a_cascade_is_tapped_at_its_last_stage_and_adapts():
    method = dict(type='Tent', regularizers=[dict(type='STAG')], optim_wrapper=OPTIM)
    model = _build(ocr_cfg(method))
    plain = _build(ocr_cfg())
    batch = make_batch(num=2)
    with torch.no_grad():
        source = plain.test_step(copy.deepcopy(batch))[0]
    head = model.decode_head[1]
    before = head.bottleneck.bn.weight.detach().clone()
    adapter = model.tta_adapter
    adapter.attach()
    assert adapter.tap.layer is head.conv_seg
    inputs = model.data_preprocessor(copy.deepcopy(batch), False)['inputs']
    with torch.no_grad(), adapter.tap.capture():
        final = model._forward(inputs)  # MMSeg's own chaining of the stages
    torch.testing.assert_close(adapter.tap.output().logits, final)
    adapter.tap.clear()
    out = model.test_step(copy.deepcopy(batch))
    assert 'stag_multiplier' in step_stats(out)
    assert not torch.equal(head.bottleneck.bn.weight.detach(), before)
    # predict-then-update: with BN on running statistics the first prediction is the source's
    model_eval = _build(ocr_cfg(dict(type='Tent', batch_stats=False, optim_wrapper=OPTIM)))
    first = model_eval.test_step(copy.deepcopy(batch))[0]
    torch.testing.assert_close(first.seg_logits.data, source.seg_logits.data)


def test_the_cascade_logits_function_chains_the_stages_as_mmseg_does():
    from stag_seg.models import segmentor_logits
    model = _build(ocr_cfg())
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(segmentor_logits(model, inputs), model._forward(inputs))


def pointrend_cfg():
    cfg = tiny_segmentor_cfg()
    cfg.update(type='CascadeEncoderDecoder', num_stages=2, neck=dict(
        type='FPN', in_channels=[8, 16, 32, 64], out_channels=8, num_outs=4), decode_head=[
        dict(type='FPNHead', in_channels=[8] * 4, in_index=[0, 1, 2, 3],
             feature_strides=[4, 8, 16, 32], channels=8, dropout_ratio=0.0,
             num_classes=NUM_CLASSES, norm_cfg=dict(type='BN', requires_grad=True),
             align_corners=False, loss_decode=dict(type='CrossEntropyLoss')),
        dict(type='PointHead', in_channels=[8], in_index=[0], channels=8, num_fcs=1,
             coarse_pred_each_layer=True, dropout_ratio=0.0, num_classes=NUM_CLASSES,
             align_corners=False, loss_decode=dict(type='CrossEntropyLoss'))],
        test_cfg=dict(mode='whole', subdivision_steps=1, subdivision_num_points=64,
                      scale_factor=2))
    cfg.pop('tta_method')
    cfg.pop('adapt_optim_wrapper')
    return cfg


def test_a_cascade_that_refines_points_is_refused_with_its_reason():
    model = _build(pointrend_cfg())
    adapter = build_adapter(model, build_method(dict(type='Tent'), OPTIM))
    with pytest.raises(NotAdaptableError,
                       match=r'CascadeEncoderDecoder cannot be adapted: its decode_head\[1\] '
                             r'\(PointHead\) classifies points .* needs a tap'):
        adapter.attach()


@pytest.mark.parametrize('head, match', [
    ('SegmenterMaskTransformerHead', 'class embeddings that its transformer computes'),
    ('IterativeDecodeHead', 'kernel update heads'),
    ('Mask2FormerHead', 'classifies masks, not pixels'),
])
def test_heads_that_are_not_per_pixel_linear_are_refused_by_type(head, match):
    model = _build(aspp_cfg())
    model.decode_head.__class__ = type(head, (type(model.decode_head), ), {})
    adapter = build_adapter(model, build_method(dict(type='Tent'), OPTIM))
    with pytest.raises(NotAdaptableError, match=f'its decode_head \\({head}\\) .*{match}'):
        adapter.attach()


def test_a_model_without_norm_layers_is_refused_by_norm_methods():
    model = _build(aspp_cfg())
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (torch.nn.LayerNorm, _BatchNorm)):
                setattr(module, child_name, torch.nn.Identity())
    adapter = build_adapter(model, build_method(dict(type='Tent'), OPTIM))
    with pytest.raises(NotAdaptableError, match='cannot be adapted by Tent: it has none of the '
                                                'affine parameters of BatchNorm'):
        adapter.attach()


# ---------------------------------------------------------------------------- classifiers
def _classifier(backbone, head, num_classes=3):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='ImageClassifier', backbone=backbone, head=head,
        neck=dict(type='GlobalAveragePooling') if head['type'] != 'ClsHead' else None,
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes,
                               mean=[127.5] * 3, std=[64.0] * 3))).eval()


def _cls_batch(num=2, seed=0):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)
                        for _ in range(num)],
                data_samples=[DataSample().set_gt_label(0) for _ in range(num)])


def test_a_backbone_with_frozen_stages_is_adapted_after_the_runner_calls_eval():
    """Linear-probe configs freeze the ResNet (frozen_stages=4, norm_eval=True), whose
    ``train()`` turns ``requires_grad`` off again; the runner calls ``model.eval()`` after the
    method is attached, and the hook puts the method's state back before each step."""
    model = _classifier(
        dict(type='ResNet', depth=18, stem_channels=8, base_channels=8, frozen_stages=4,
             norm_eval=True, out_indices=(3, )),
        dict(type='LinearClsHead', num_classes=3, in_channels=64))
    adapter = build_adapter(model, build_method(dict(type='Tent', regularizers=[
        dict(type='STAG')]), OPTIM))
    adapter.attach()
    model.eval()  # what TestLoop.run does after before_test
    adapter.method.apply_modes()  # what TTAHook.before_test_iter does
    before = model.backbone.layer1[0].bn1.weight.detach().clone()
    out = adapter.test_step(_cls_batch())
    assert 'stag_multiplier' in step_stats(out)
    assert not torch.equal(model.backbone.layer1[0].bn1.weight.detach(), before)


class _ConvClassifierBackbone(torch.nn.Module):
    """A backbone that classifies, as VGG and Inception-v3 do with ``num_classes``."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                            torch.nn.Flatten())
        self.classifier = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                              torch.nn.Linear(8, num_classes))

    def forward(self, x):
        return (self.classifier(self.features(x)), )


def test_a_backbone_that_classifies_is_tapped_at_its_last_linear():
    from mmpretrain.registry import MODELS
    MODELS.register_module(module=_ConvClassifierBackbone, force=True)
    try:
        model = _classifier(dict(type='_ConvClassifierBackbone'), dict(type='ClsHead'))
    finally:
        MODELS._module_dict.pop('_ConvClassifierBackbone')
    adapter = build_adapter(model, build_method(dict(type='Tent', regularizers=[
        dict(type='STAG')]), OPTIM))
    adapter.attach()
    assert adapter.tap.layer is model.backbone.classifier[2]
    out = adapter.test_step(_cls_batch())  # the first step checks the scores come from it
    assert 'stag_multiplier' in step_stats(out) and adapter.tap.checked


class _Double(torch.nn.Module):
    def forward(self, x):
        return 2 * x


def test_a_head_that_does_more_after_its_last_linear_is_refused_at_the_first_step():
    model = _classifier(
        dict(type='ResNet', depth=18, stem_channels=8, base_channels=8, out_indices=(3, )),
        dict(type='LinearClsHead', num_classes=3, in_channels=64))
    model.head.fc = torch.nn.Sequential(model.head.fc, _Double())  # more after the tap
    adapter = build_adapter(model, build_method(dict(type='Tent'), OPTIM))
    with pytest.raises(NotAdaptableError, match=r'ImageClassifier cannot be adapted: the softmax '
                                                r'of its tapped layer \(LinearClsHead final'):
        adapter.test_step(_cls_batch())
