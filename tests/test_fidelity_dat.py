"""DAT against its reference step (``single_gpu_our`` in RochelleNi/DAT ``ours.py``), restated
here in plain PyTorch: the reference's own ``.grad`` accumulation, a ``torch.optim.Adam`` built
anew at every step, the ranking by ``sum(|grad|)``, CoTTA's 14-view teacher on MMSeg's slide
inference."""
import copy

import pytest
import torch
from conftest import build_segmentor
from segmentation_reference import aug_test, ema, train_loss_map, views
from test_fidelity import INPUT, ORIGINAL, _cotta_batch

pytestmark = pytest.mark.slow

SLIDE = dict(mode='slide', crop_size=(48, 48), stride=(32, 32))
# two visits in round 1, one in round 2; the ranking window ends inside each visit
STREAM = [(1, [0, 1, 2]), (1, [3, 4]), (2, [5, 6])]
LR, FRACTION, WINDOW = 2e-3, 0.05, 2


def _sharpened(model):
    """Confident predictions, as a trained model's, so that every mask and gate has pixels on
    both sides of the reference's thresholds (0.69, 0.85, 0.99)."""
    with torch.no_grad():
        model.decode_head.conv_seg.weight.mul_(12)
    return model


def _dat_model(**kwargs):
    method = dict(type='DAT', view_source='original', fraction=FRACTION, window=WINDOW,
                  **kwargs)
    return _sharpened(build_segmentor(
        method, test_cfg=SLIDE,
        adapt_optim_wrapper=dict(optimizer=dict(type='Adam', lr=LR, betas=(0.9, 0.999)))))


def _reference_tensors(model):
    """The reference's tensor list: ``named_parameters`` order, attention's merged input
    projection as the reference's separate ``q`` and ``kv`` (rows [0, C) and [C, 3C))."""
    out = []
    named = dict(model.named_parameters())
    for name, p in model.named_parameters():
        if name.endswith('in_proj_bias'):
            continue
        if name.endswith('in_proj_weight'):
            c = p.shape[1]
            bias = named[name.replace('in_proj_weight', 'in_proj_bias')]
            for part, rows in (('q', slice(0, c)), ('kv', slice(c, 3 * c))):
                out += [(f'{name}:{part}.weight', p, rows), (f'{name}:{part}.bias', bias, rows)]
        else:
            out.append((name, p, slice(None)))
    return out


def _reference_dat(model, stream, lr_of_round, stale=True):
    """``single_gpu_our``, one call per domain visit, with a driver that keeps student, teacher
    and anchor across visits and halves the rate per round."""
    student = model
    teacher = copy.deepcopy(student)
    anchor = copy.deepcopy(student)
    for m in (teacher, anchor):
        for p in m.parameters():
            p.requires_grad_(False)
    student.eval(), teacher.eval(), anchor.eval()
    tensors = _reference_tensors(student)
    mean, std = student.data_preprocessor.mean, student.data_preprocessor.std
    labels, picked = [], []
    for round_idx, seeds in stream:
        lr = lr_of_round(round_idx)
        previous = tensors  # Adam #0 of the visit: every tensor; it never steps
        selected = []
        for i, seed in enumerate(seeds):
            batch = _cotta_batch(seed)
            original = batch['data_samples'][0].metainfo['ori_img']
            view_list = views(original, INPUT, mean, std)
            avg_label, _, pred_t, _ = aug_test(teacher, view_list, ORIGINAL)
            _, conf_a, _, _ = aug_test(anchor, view_list, ORIGINAL)
            u = (conf_a[4] + conf_a[6] + conf_a[8]) / 3
            label = torch.where(conf_a[4] > 0.69, pred_t[4], avg_label)
            labels.append(label)
            if not stale:
                for p in student.parameters():
                    p.grad = None
            loss_map = train_loss_map(student, view_list[4][0], label)
            (loss_map * (u < 0.85).long()).mean().backward(retain_graph=True)

            def rank_and_add():
                scores = [(name, float(p.grad[rows].abs().sum()))
                          for name, p, rows in tensors if p.grad is not None]
                ranked = sorted(scores, key=lambda s: s[1], reverse=True)
                for name, _ in ranked[:int(len(ranked) * FRACTION)]:
                    if name not in [n for n, _, _ in selected]:
                        selected.extend(t for t in tensors if t[0] == name)

            if i == 0:
                selected = []
            if i < WINDOW:
                rank_and_add()
            for _, p, rows in previous:  # opt_prev.zero_grad()
                if p.grad is not None:
                    p.grad[rows] = 0
            (loss_map * (u > 0.99).long()).mean().backward()
            if i < WINDOW:
                rank_and_add()
            # Adam(selected).step(): a split tensor's other half takes no part
            held = {id(p): p.grad.clone() for _, p, _ in selected}
            params = list({id(p): p for _, p, _ in selected}.values())
            for p in params:
                mask = torch.zeros_like(p, dtype=torch.bool)
                for _, q, rows in selected:
                    if q is p:
                        mask[rows] = True
                p.grad = torch.where(mask, p.grad, torch.zeros_like(p.grad))
            if params:
                torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999)).step()
            for p in params:  # opt.zero_grad() on the selected tensors only
                p.grad = held[id(p)]
            for _, p, rows in selected:
                p.grad[rows] = 0
            previous = list(selected)
            ema(teacher, student, 0.999)
        picked.append([n for n, _, _ in selected])
    return labels, picked, student, teacher


def _port(stream, **kwargs):
    model = _dat_model(**kwargs)
    model.tta_adapter.attach()
    method = model.tta_method
    labels, picked = [], []
    for visit, (round_idx, seeds) in enumerate(stream):
        method.begin_domain(round_idx, visit)
        for seed in seeds:
            out = model.test_step(_cotta_batch(seed))[0]
            labels.append(out.seg_logits.data.argmax(0))
        picked.append(method.selected_names())
    return labels, picked, model, method


def _close(a, b):
    return all(torch.allclose(p, q, rtol=0, atol=1e-6)
               for p, q in zip(a.parameters(), b.parameters()))


def test_dat_equals_its_reference_step_over_two_rounds():
    labels, picked, model, method = _port(STREAM)
    ref_labels, ref_picked, student, teacher = _reference_dat(
        _dat_model(), STREAM, lambda r: LR * 0.5 ** (r - 1))
    for got, want in zip(labels, ref_labels):
        assert torch.equal(got, want[0])
    # the same tensors, in the same order (the split projections by the reference's names)
    assert [[n.replace('in_proj_weight:', '') for n in v] for v in ref_picked] == picked
    assert all(len(v) > 0 for v in picked)
    source = _dat_model()
    moved = [not torch.equal(p, q) for p, q in zip(model.parameters(), source.parameters())]
    assert any(moved) and not all(moved)  # a few tensors adapted, most untouched
    for mine, ref in zip(model.parameters(), student.parameters()):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-6)
    for mine, ref in zip(method.teacher.parameters(), teacher.parameters()):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-6)
    # the quirks matter on this stream: without the stale sums, or with a persistent Adam, or
    # with a constant rate, the port leaves the reference
    for kwargs in (dict(stale_grads=False), dict(fresh_optimizer=False),
                   dict(round_lr_factor=1.0)):
        _, _, other, _ = _port(STREAM, **kwargs)
        assert not _close(other, student), kwargs


def test_dat_ranks_the_1065_tensors_of_the_reference_segformer_b5():
    import os.path as osp

    from conftest import ROOT
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from torch import nn

    from stag_seg.methods.dat import reference_tensors
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(ROOT, 'configs/acdc/segformer-b5_source.py')).model
    model = nn.Module()
    model.backbone = MODELS.build(cfg.backbone)
    model.decode_head = MODELS.build(cfg.decode_head)
    params = list(model.parameters())
    assert len(params) == 961  # q and kv merged: int(961 * 0.001) = 0 would select nothing
    units = reference_tensors(model, params)
    assert len(units) == 1065 and int(len(units) * 0.001) == 1
    names = [n for n, _, _ in units]
    block = names.index('backbone.layers.0.1.0.attn.attn.q.weight')
    assert names[block:block + 5] == [
        'backbone.layers.0.1.0.attn.attn.q.weight', 'backbone.layers.0.1.0.attn.attn.q.bias',
        'backbone.layers.0.1.0.attn.attn.kv.weight', 'backbone.layers.0.1.0.attn.attn.kv.bias',
        'backbone.layers.0.1.0.attn.attn.out_proj.weight']
