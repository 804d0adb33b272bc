"""Hybrid-TTA against its reference step (``single_gpu_our`` in hhhyyeee/Hybrid-TTA
``mmseg/apis/test_feat.py``, with ``MOODEncoderDecoder.forward_train_simmim``, the
``MaskGenerator`` and ``_parse_losses`` of ``simmim_encoder_decoder.py``, the masked forward of
``backbones/simmim.py``, the adapter of ``pet/adapter.py``, ``SimMIMSegFormerDecoder``,
``PixelReconstructionLoss`` and ``FreezeController.loss_seg_with_wma`` of ``ood/base.py``),
restated here in plain PyTorch and NumPy: the EMA teacher's slide inference resized twice, the
global-RNG mask of 32-px squares, the token replacement after the first patch embedding, the
adapters beside the MixFFN, one masked student forward for both losses, the detector deciding
between the forward and the backward with name-based freezing, a new Adam per visit, the EMA
of every parameter."""
import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import build_segmentor, tiny_segmentor_cfg
from test_fidelity import INPUT, ORIGINAL, _cotta_batch

pytestmark = pytest.mark.slow

SLIDE = dict(mode='slide', crop_size=(160, 160), stride=(120, 120))  # one window: the image
STREAM = [[0, 1, 2, 3, 4], [5, 6, 7]]  # two domain visits
LR, SEED = 1e-3, 42
# a detector that switches within a few steps: window 2, threshold from 1.2, fast EMA
DETECTOR = dict(window=2, margin=0.1, detector_alpha=0.6, threshold=1.2)
BLOCK = re.compile(r'^backbone\.layers\.\d+\.1\.')  # the reference's "block{s}" names


def _hybrid_model(adapter_init='reference', **kwargs):
    backbone = dict(type='HybridTTABackbone', backbone=tiny_segmentor_cfg()['backbone'],
                    recon_channels=16, init_seed=SEED, adapter_init=adapter_init)
    model = build_segmentor(
        dict(type='HybridTTA', seed=SEED, **DETECTOR, **kwargs), backbone=backbone,
        test_cfg=SLIDE,
        adapt_optim_wrapper=dict(optimizer=dict(type='Adam', lr=LR, betas=(0.9, 0.999))))
    with torch.no_grad():
        model.decode_head.conv_seg.weight.mul_(5)  # confident predictions, as a trained model
    return model


def _mask(rng, height, width):
    """``MaskGenerator(input_size, 32, 4, 0.6)()``."""
    rows, cols = height // 32, width // 32
    idx = rng.permutation(rows * cols)[:int(np.ceil(rows * cols * 0.6))]
    mask = np.zeros(rows * cols, dtype=int)
    mask[idx] = 1
    mask = mask.reshape((rows, cols)).repeat(8, axis=0).repeat(8, axis=1)
    return torch.from_numpy(mask).unsqueeze(0)


def _masked_features(backbone, x, mask):
    """``CVPSimMIMMixVisionTransformer.forward(x, mask)``: the mask token replaces the masked
    tokens after ``patch_embed1``; every block ``x + (mlp(y) + adapter(y))``, ``y = norm2(x)``."""
    outs = []
    for i, layer in enumerate(backbone.layers):
        x, hw = layer[0](x)
        n, length, _ = x.shape
        if i == 0:
            token = backbone.mask_token.expand(n, length, -1)
            w = mask.flatten(1).unsqueeze(-1).type_as(token)
            x = x * (1. - w) + token * w
        for blk in layer[1]:
            x = blk.attn(blk.norm1(x), hw, identity=x)
            y = blk.norm2(x)
            h = blk.ffn.layers(y.transpose(1, 2).reshape(n, -1, *hw)).flatten(2).transpose(1, 2)
            ad = blk.adapter.layer
            a = ad[2](F.gelu(ad[0](y))) * ad[3].scale
            x = x + (h + a)
        x = layer[2](x).transpose(1, 2).reshape(n, -1, *hw)
        outs.append(x)
    return outs


def _recon(neck, feats):
    """``SimMIMSegFormerDecoder``: per-level linear, resize to c1, cat c4..c1, conv-BN-ReLU,
    1x1 conv, PixelShuffle(4)."""
    c1 = feats[0]
    maps = []
    for proj, f in ((neck.linear_c4, feats[3]), (neck.linear_c3, feats[2]),
                    (neck.linear_c2, feats[1]), (neck.linear_c1, feats[0])):
        n, _, h, w = f.shape
        e = F.linear(f.flatten(2).transpose(1, 2), proj.proj.weight, proj.proj.bias)
        e = e.permute(0, 2, 1).reshape(n, -1, h, w)
        maps.append(F.interpolate(e, size=c1.shape[2:], mode='bilinear', align_corners=False))
    fuse = neck.linear_fuse
    z = F.conv2d(torch.cat(maps, dim=1), fuse.conv.weight)
    z = F.relu(F.batch_norm(z, fuse.bn.running_mean, fuse.bn.running_var, fuse.bn.weight,
                            fuse.bn.bias, False, 0.1, fuse.bn.eps))
    return F.pixel_shuffle(F.conv2d(z, neck.decoder[0].weight, neck.decoder[0].bias), 4)


def _reference_hybrid(model, stream, decide_after_update=False):
    student = model
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    np.random.seed(SEED)  # the mask generator draws from NumPy's global generator
    mean, std = student.data_preprocessor.mean, student.data_preprocessor.std
    blocks = [(n, p) for n, p in student.named_parameters()
              if BLOCK.match(n) and 'adapter' not in n]
    window, thr, frozen = [], DETECTOR['threshold'], False
    a_thr = DETECTOR['detector_alpha']
    labels, modes = [], []
    for seeds in stream:
        for n, p in student.named_parameters():  # FreezeController.reset: unfreeze the blocks
            if BLOCK.match(n):
                p.requires_grad_(True)
        frozen = False
        optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad],
                                     lr=LR, betas=(0.9, 0.999))
        for seed in seeds:
            student.eval(), teacher.eval()
            x = (_cotta_batch(seed)['inputs'][0][None].float() - mean) / std
            with torch.no_grad():
                logits = teacher.decode_head.forward(teacher.extract_feat(x))
                logits = F.interpolate(logits, size=INPUT, mode='bilinear', align_corners=False)
                probs = F.interpolate(logits, size=ORIGINAL, mode='bilinear',
                                      align_corners=False).softmax(1)
                label = probs.argmax(1)
            labels.append(label)
            mask = _mask(np.random, *INPUT)
            feats = _masked_features(student.backbone, x, mask)
            rec = _recon(student.backbone.recon_neck, feats)
            pix = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1)
            recon_loss = (torch.abs(rec - x) * pix).sum() / pix.sum() / 3
            seg = F.interpolate(student.decode_head.forward(feats), size=ORIGINAL,
                                mode='bilinear', align_corners=False)
            loss_seg = F.cross_entropy(seg, label, reduction='none', ignore_index=255).mean()
            loss = loss_seg + recon_loss * 0.3

            def detector():
                nonlocal thr, frozen
                window.append(loss_seg.item())
                et = (len(window) >= DETECTOR['window']
                      and np.mean(window[-DETECTOR['window']:]) < (1 + 0.1) * thr)
                if et and not frozen:
                    for _, p in blocks:
                        p.requires_grad_(False)
                        p.grad = None
                    frozen = True
                elif not et and frozen:
                    for n, p in student.named_parameters():
                        if BLOCK.match(n):
                            p.requires_grad_(True)
                    frozen = False
                thr = thr * a_thr + loss_seg.item() * (1 - a_thr)

            if not decide_after_update:
                detector()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)  # torch 1.9 keeps zeroed gradients
            if decide_after_update:  # a break: the blocks are updated once more at a freeze
                detector()
            modes.append(frozen)
            with torch.no_grad():
                for t, s in zip(teacher.parameters(), student.parameters()):
                    t.data = 0.999 * t.data + (1 - 0.999) * s.data
    return labels, modes, student, teacher


def _port(stream, **kwargs):
    model = _hybrid_model(**kwargs)
    model.tta_adapter.attach()
    method = model.tta_method
    labels, modes = [], []
    for visit, seeds in enumerate(stream):
        method.begin_domain(1, visit)
        method.reset_optimizer()  # test_cfg.optimizer_reset='domain'
        for seed in seeds:
            out = model.test_step(_cotta_batch(seed))[0]
            labels.append(out.seg_logits.data.argmax(0))
            modes.append(bool(out.metainfo['adapt_stats']['hybrid_adapter_tuning']))
    return labels, modes, model, method


def _assert_same(port, ref):
    labels, modes, model, method = port
    ref_labels, ref_modes, student, teacher = ref
    assert modes == ref_modes
    for got, want in zip(labels, ref_labels):
        assert torch.equal(got, want[0])
    for (name, mine), ref_p in zip(model.named_parameters(), student.parameters()):
        torch.testing.assert_close(mine, ref_p, rtol=0, atol=1e-6, msg=name)
    for mine, ref_p in zip(method.teacher.parameters(), teacher.parameters()):
        torch.testing.assert_close(mine, ref_p, rtol=0, atol=1e-6)


def test_hybrid_tta_equals_its_reference_step():
    port = _port(STREAM)
    ref = _reference_hybrid(_hybrid_model(), STREAM)
    modes = port[1]
    # the stream freezes, unfreezes within a visit, and ends a visit frozen (the next visit
    # starts unfrozen, its first decision may freeze again)
    pairs = list(zip(modes, modes[1:]))
    assert (False, True) in pairs and (True, False) in pairs
    assert modes[len(STREAM[0]) - 1]
    _assert_same(port, ref)
    # the adapters start from the reference's non-zero init and move
    source = _hybrid_model()
    up = [m.layer[2].weight for m in source.backbone.adapters()]
    assert all(w.abs().sum() > 0 for w in up)


def test_hybrid_tta_freezing_drops_the_gradient_of_the_same_step():
    """The detector acts between the loss and the backward: a reference that decided after
    the update would move the blocks once more at a freeze, and the port would differ."""
    port = _port(STREAM)
    ref = _reference_hybrid(_hybrid_model(), STREAM, decide_after_update=True)
    with pytest.raises(AssertionError):
        _assert_same(port, ref)


def test_hybrid_tta_frozen_blocks_are_exactly_the_blocks_own_weights():
    labels, modes, model, method = _port(STREAM[:1])
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    want = {n for n, _ in model.named_parameters() if BLOCK.match(n) and 'adapter' not in n}
    assert modes[-1] and frozen == want
    model.eval()  # the runner's eval() before each batch keeps the blocks frozen
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == want
    method.begin_domain(1, 1)
    assert all(p.requires_grad for p in model.parameters())
    model.backbone.arm_mask(torch.ones(1, 16, 32))
    model.tta_adapter.detach()  # release: the flags as before attach, no mask left armed
    assert model.backbone._armed is None and model.backbone.masked_features is None


def test_shift_detector_rule_against_hand_computed_values():
    from stag_seg.methods import ShiftDetector
    det = ShiftDetector(window=3, margin=0.1, alpha=0.5, threshold=1.0)
    # value -> (decision, threshold after it), worked out by hand:
    # no decision before 3 values; mean of the last 3 against 1.1 x the threshold from before
    # this value (the EMA takes the value after the decision)
    steps = [(2.0, False, 1.5), (1.0, False, 1.25),
             (0.5, True, 0.875),     # mean 7/6 < 1.1 * 1.25 (not < 1.1 * 0.875: after = wrong)
             (0.4, True, 0.6375),    # mean 0.6333 < 1.1 * 0.875
             (3.0, False, 1.81875)]  # mean 1.3 > 1.1 * 0.6375: a rising loss means a shift
    for value, decision, threshold in steps:
        assert det.observe(value) is decision
        assert det.threshold == pytest.approx(threshold, abs=1e-12)
    # the released configuration: nothing before 10 values, the threshold from 0
    det = ShiftDetector()
    assert [det.observe(1.0) for _ in range(10)] == [False] * 10
    assert det.threshold == pytest.approx(1 - 0.999 ** 10, abs=1e-12)
    with pytest.raises(ValueError, match='window'):
        ShiftDetector(window=0)


def test_block_mask_is_the_reference_mask_generator():
    from stag_seg.methods.hybrid_tta import block_mask
    ours = np.random.RandomState(SEED)
    np.random.seed(SEED)
    for _ in range(3):  # redrawn every step, from the same stream as NumPy's global one
        mask = block_mask(ours, (544, 960), 32, 4, 0.6)
        assert mask.shape == (1, 136, 240) and mask.dtype == np.int64
        assert np.array_equal(mask, _mask(np.random, 544, 960).numpy())
        assert mask[0, ::8, ::8].sum() == 306  # ceil(510 * 0.6) squares of 32 px
    with pytest.raises(ValueError, match='960x544, not 960x540'):
        block_mask(ours, (540, 960), 32, 4, 0.6)


def test_hybrid_backbone_parts_and_their_init():
    from mmseg.registry import MODELS
    from stag_seg.models import HybridMixVisionTransformer
    b5 = dict(type='NVMixVisionTransformer', in_channels=3, embed_dims=64, num_stages=4,
              num_layers=[3, 6, 40, 3], num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3],
              sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3), mlp_ratio=4, qkv_bias=True)
    model = MODELS.build(dict(type='HybridTTABackbone', backbone=b5))
    assert isinstance(model, HybridMixVisionTransformer) and model.nv_eps == 1e-5
    adapters = model.adapters()
    assert len(adapters) == 52
    assert sum(p.numel() for a in adapters for p in a.parameters()) == 168568
    assert sum(p.numel() for p in model.recon_neck.parameters()) == 3187248
    assert model.mask_token.shape == (1, 1, 64) and not model.mask_token.any()
    # what adapter tuning freezes: the 52 blocks' own weights (the reference's 79,511,552)
    assert sum(p.numel() for b in model.blocks() for n, p in b.named_parameters()
               if not n.startswith('adapter.')) == 79511552
    up = torch.cat([a.layer[2].weight.flatten() for a in adapters])
    assert up.std().item() == pytest.approx(0.02, rel=0.05) and up.abs().max() <= 2
    assert all(not a.layer[0].bias.any() and not a.layer[2].bias.any()
               and a.layer[3].scale.item() == 1.0 for a in adapters)
    # the init is seeded, and survives the backbone's own init_weights
    again = MODELS.build(dict(type='HybridTTABackbone', backbone=b5))
    again.init_weights()
    assert torch.equal(again.adapters()[7].layer[2].weight, adapters[7].layer[2].weight)
    assert torch.equal(again.recon_neck.decoder[0].weight, model.recon_neck.decoder[0].weight)
    zero = MODELS.build(dict(type='HybridTTABackbone', backbone=dict(b5, num_layers=[1] * 4),
                             adapter_init='zero'))
    assert all(not a.layer[2].weight.any() for a in zero.adapters())
    with pytest.raises(ValueError, match='wraps a MixVisionTransformer'):
        MODELS.build(dict(type='HybridTTABackbone', backbone=dict(type='ResNetV1c')))


def test_hybrid_tta_refuses_what_it_cannot_run():
    plain = build_segmentor(dict(type='HybridTTA'), adapt_optim_wrapper=dict(
        optimizer=dict(type='Adam', lr=LR)))
    with pytest.raises(ValueError, match='HybridTTABackbone'):
        plain.tta_adapter.attach()
    model = _hybrid_model()
    model.tta_adapter.attach()
    with pytest.raises(ValueError, match='batch size 1'):
        model.test_step(dict(inputs=_cotta_batch(0)['inputs'] * 2,
                             data_samples=_cotta_batch(0)['data_samples'] * 2))


def test_hybrid_tta_state_resumes_the_same_stream():
    _, _, model, method = _port([[0, 1, 2]])
    import io
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    weights = copy.deepcopy(model.state_dict())
    going = [model.test_step(_cotta_batch(s))[0].seg_logits.data for s in (3, 4)]
    other = _hybrid_model()
    other.tta_adapter.attach()
    other.load_state_dict(weights)
    other.tta_method.load_state_dict(state)
    resumed = [other.test_step(_cotta_batch(s))[0].seg_logits.data for s in (3, 4)]
    for a, b in zip(going, resumed):
        assert torch.equal(a, b)
    assert other.tta_method.detector.state_dict() == method.detector.state_dict()


AUG_ORIGINAL = (120, 256)  # not the input's 1:2, so that a view that kept the ratio would differ
SCALES = (0.5, 1.0, 1.5)


def _aug_batch(seed):
    """An INPUT-sized image stretched from an AUG_ORIGINAL-sized one, the original kept."""
    import cv2
    from mmseg.structures import SegDataSample
    from test_fidelity import _original_image
    original = _original_image(*AUG_ORIGINAL, seed=seed)
    small = cv2.resize(original, INPUT[::-1], interpolation=cv2.INTER_LINEAR)
    meta = dict(ori_shape=AUG_ORIGINAL, img_shape=INPUT, pad_shape=INPUT, ori_img=original,
                img_path=f'{seed}.png')
    img = torch.from_numpy(small.transpose(2, 0, 1).copy())
    return dict(inputs=[img], data_samples=[SegDataSample(metainfo=meta)])


def _reference_aug(model, seeds):
    """``--aug-test``: ``MultiScaleFlipAug`` with ``Resize(keep_ratio=False)`` to
    (int(w r), int(h r)); every view through ``aug_test``; the anchor's view-4 confidence > 0.69
    keeps the teacher's view-4 label, else the average's; the student on view 4."""
    import cv2
    from segmentation_reference import aug_test
    student = model
    teacher, anchor = copy.deepcopy(student), copy.deepcopy(student)
    for p in list(teacher.parameters()) + list(anchor.parameters()):
        p.requires_grad_(False)
    np.random.seed(SEED)
    mean, std = student.data_preprocessor.mean, student.data_preprocessor.std
    optimizer = torch.optim.Adam(student.parameters(), lr=LR, betas=(0.9, 0.999))
    labels = []
    for seed in seeds:
        original = _aug_batch(seed)['data_samples'][0].metainfo['ori_img']
        view_list = []
        for r in SCALES:
            img = cv2.resize(original, (int(INPUT[1] * r), int(INPUT[0] * r)),
                             interpolation=cv2.INTER_LINEAR)
            for flip in (False, True):
                v = np.ascontiguousarray(img[:, ::-1] if flip else img)
                x = torch.from_numpy(v.transpose(2, 0, 1)).float()[None]
                view_list.append(((x - mean) / std, flip))
        plain = 2  # scale 1.0, not flipped
        avg, _, pred_t, _ = aug_test(teacher, view_list, AUG_ORIGINAL)
        _, conf_a, _, _ = aug_test(anchor, view_list, AUG_ORIGINAL)
        label = torch.where(conf_a[plain] > 0.69, pred_t[plain], avg)
        labels.append(label)
        x = view_list[plain][0]
        mask = _mask(np.random, *INPUT)
        feats = _masked_features(student.backbone, x, mask)
        rec = _recon(student.backbone.recon_neck, feats)
        pix = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1)
        recon_loss = (torch.abs(rec - x) * pix).sum() / pix.sum() / 3
        seg = F.interpolate(student.decode_head.forward(feats), size=AUG_ORIGINAL,
                            mode='bilinear', align_corners=False)
        loss = F.cross_entropy(seg, label, ignore_index=255) + recon_loss * 0.3
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                t.data = 0.999 * t.data + (1 - 0.999) * s.data
    return labels, student, teacher


def test_hybrid_tta_aug_test_variant_equals_its_reference_step():
    seeds = [0, 1, 2]
    model = _hybrid_model(aug_test=True, scales=SCALES, dynamic=False)
    model.tta_adapter.attach()
    labels = [model.test_step(_aug_batch(s))[0].seg_logits.data.argmax(0) for s in seeds]
    ref_labels, student, teacher = _reference_aug(_hybrid_model(), seeds)
    for got, want in zip(labels, ref_labels):
        assert torch.equal(got, want[0])
    for mine, ref_p in zip(model.parameters(), student.parameters()):
        torch.testing.assert_close(mine, ref_p, rtol=0, atol=1e-6)
    for mine, ref_p in zip(model.tta_method.teacher.parameters(), teacher.parameters()):
        torch.testing.assert_close(mine, ref_p, rtol=0, atol=1e-6)
    # the gate has pixels on both sides, and the averaged label differs from the plain one
    plain = _hybrid_model(dynamic=False)
    plain.tta_adapter.attach()
    first = plain.test_step(_aug_batch(0))[0].seg_logits.data.argmax(0)
    assert not torch.equal(first, labels[0])
    with pytest.raises(ValueError, match='must hold 1.0'):
        _hybrid_model(aug_test=True, scales=(0.5, 2.0))


@pytest.mark.parametrize('mode', ['loss', 'reweight'])
def test_hybrid_tta_composes_with_stag(mode):
    model = _hybrid_model(regularizers=[dict(type='STAG', anchors='live', mode=mode)])
    model.tta_adapter.attach()
    before = [p.detach().clone() for p in model.parameters()]
    stats = model.test_step(_cotta_batch(0))[0].metainfo['adapt_stats']
    assert stats['nonfinite'] == 0.0 and stats['hybrid_recon'] > 0
    assert any(k.startswith('stag') for k in stats)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
