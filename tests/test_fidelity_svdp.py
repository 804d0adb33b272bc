"""SVDP against its reference step (``single_gpu_svdp`` in Anonymous-012/SVDP
``mmseg/apis/test.py``, with ``SparsePrompter_uncertainty`` of ``prompt.py``), restated here in
plain PyTorch, NumPy and SciPy: MC dropout of the unprompted teacher's head, ``np.var`` over the
passes, cubic ``zoom`` and ``argsort`` placement of the prompt per view, CoTTA's label over the
prompted views, the prompted student, Adam per visit, the EMA with the prompt's own rate, and
the stochastic restore."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import build_segmentor, tiny_segmentor_cfg
from scipy.ndimage import zoom
from segmentation_reference import aug_test, train_loss_map, views
from test_fidelity import INPUT, ORIGINAL, _cotta_batch
from torch import nn

pytestmark = pytest.mark.slow

SLIDE = dict(mode='slide', crop_size=(48, 48), stride=(32, 32))
STREAM = [[0, 1], [2, 3]]  # two domain visits
LR, RATE, SEED = 1e-3, 0.05, 42


def _svdp_model(**kwargs):
    backbone = dict(type='SparsePromptedBackbone', backbone=tiny_segmentor_cfg()['backbone'],
                    prompt=dict(sparse_rate=RATE, input_size=INPUT, seed=SEED))
    model = build_segmentor(
        dict(type='SVDP', view_source='original', seed=SEED, **kwargs), backbone=backbone,
        test_cfg=SLIDE,
        adapt_optim_wrapper=dict(optimizer=dict(type='Adam', lr=LR, betas=(0.9, 0.999))))
    with torch.no_grad():
        # predictions confident enough that the 0.69 gate has pixels on both sides, and
        # prompts strong enough to change the teacher's averaged label
        model.decode_head.conv_seg.weight.mul_(5)
        model.backbone.prompt.patch.mul_(20)
    return model


class _Dropout(nn.Module):
    """``nn.Dropout(0.5)`` in train mode, its masks from ``generator``."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, x):
        return x * torch.empty_like(x).bernoulli_(0.5, generator=self.generator).div_(0.5)


def _uncertainty(teacher, x, generator):
    """``forward_test_svdp`` with 10 head passes, then ``np.var`` over them, summed over the
    classes."""
    own = teacher.decode_head.dropout
    teacher.decode_head.dropout = _Dropout(generator)
    with torch.no_grad():
        feats = teacher.extract_feat(x)
        passes = [F.interpolate(teacher.decode_head.forward(feats), size=ORIGINAL,
                                mode='bilinear', align_corners=False).softmax(1).numpy()
                  for _ in range(10)]
    teacher.decode_head.dropout = own
    return np.var(np.stack(passes), axis=0).sum(axis=1)[0]


def _prompt_list(patch, uncertainty, sizes):
    """``update_mask``: per view, the zoomed map's top-``pnum`` pixels (ascending), each
    given ``patch[i]``; odd views flipped."""
    out = []
    for j, (h, w) in enumerate(sizes):
        resized = zoom(uncertainty, (h / ORIGINAL[0], w / ORIGINAL[1]))
        top = np.argsort(resized.reshape(-1))[-patch.shape[0]:]
        prompt = torch.zeros(3, h, w)
        for i, idx in enumerate(top):
            prompt[:, idx // w, idx % w] = patch[i, :, 0, 0]
        out.append((prompt.flip(-1) if j % 2 else prompt)[None])
    return out


def _restorable(model):
    """Every module's own tensors named weight or bias (the merged input projection stands for
    the reference's separate q and kv weights and biases)."""
    return [(f'{m_name}.{p_name}'.lstrip('.'), p) for m_name, m in model.named_modules()
            for p_name, p in m.named_parameters(recurse=False)
            if p_name.endswith('weight') or p_name.endswith('bias')]


def _reference_svdp(model, stream):
    student = model
    teacher = copy.deepcopy(student)
    anchor = copy.deepcopy(student)
    for p in list(teacher.parameters()) + list(anchor.parameters()):
        p.requires_grad_(False)
    source = copy.deepcopy(student.state_dict())
    mean, std = student.data_preprocessor.mean, student.data_preprocessor.std
    mc_generator = torch.Generator().manual_seed(SEED + 2)
    restore_generator = torch.Generator().manual_seed(SEED)
    labels = []
    for seeds in stream:
        prompt = [p for n, p in student.named_parameters() if 'prompt' in n]
        others = [p for n, p in student.named_parameters() if 'prompt' not in n]
        optimizer = torch.optim.Adam([dict(params=prompt, lr=1e-4), dict(params=others, lr=LR)],
                                     betas=(0.9, 0.999))
        anchor.eval()
        for seed in seeds:
            student.eval(), teacher.eval()
            original = _cotta_batch(seed)['data_samples'][0].metainfo['ori_img']
            view_list = views(original, INPUT, mean, std)
            sizes = [tuple(x.shape[2:]) for x, _ in view_list]
            unc = _uncertainty(teacher, view_list[4][0], mc_generator)
            _, conf_a, _, _ = aug_test(anchor, [view_list[4]], ORIGINAL)  # simple_test
            with torch.no_grad():
                prompts_s = _prompt_list(student.backbone.prompt.patch, unc, sizes)
                prompts_t = _prompt_list(teacher.backbone.prompt.patch, unc, sizes)
            avg_label, _, pred_t, _ = aug_test(teacher, view_list, ORIGINAL,
                                               transform=lambda j, x: x + prompts_t[j])
            label = torch.where(conf_a[0] > 0.69, pred_t[4], avg_label)
            labels.append(label)
            loss = train_loss_map(student, view_list[4][0] + prompts_s[4], label).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            rate = 0.999 - float(unc.mean()) * 0.1  # float64, as NumPy 1.x promotes it
            with torch.no_grad():
                for t, (name, s) in zip(teacher.parameters(), student.named_parameters()):
                    a = rate if 'prompt' in name else 0.999
                    t.data[:] = a * t.data[:] + (1 - a) * s.data[:]
                for name, p in _restorable(student):
                    mask = (torch.rand(p.shape, generator=restore_generator) < 0.01).float()
                    p.data = source[name] * mask + p * (1. - mask)
    return labels, student, teacher


def _port(stream):
    model = _svdp_model()
    model.tta_adapter.attach()
    method = model.tta_method
    labels = []
    for visit, seeds in enumerate(stream):
        method.begin_domain(1, visit)
        method.reset_optimizer()  # test_cfg.optimizer_reset='domain'
        for seed in seeds:
            labels.append(model.test_step(_cotta_batch(seed))[0].seg_logits.data.argmax(0))
    return labels, model, method


def test_svdp_equals_its_reference_step():
    labels, model, method = _port(STREAM)
    ref_labels, student, teacher = _reference_svdp(_svdp_model(), STREAM)
    for got, want in zip(labels, ref_labels):
        assert torch.equal(got, want[0])
    for mine, ref in zip(model.parameters(), student.parameters()):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-6)
    for mine, ref in zip(method.teacher.parameters(), teacher.parameters()):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-6)
    # the prompt is never trained: the student's keeps its initial values
    assert torch.equal(model.backbone.prompt.patch, _svdp_model().backbone.prompt.patch)
    # the prompts change the labels on this stream (so misplacing them would show)
    unprompted = _svdp_model()
    with torch.no_grad():
        unprompted.backbone.prompt.patch.zero_()
    unprompted.tta_adapter.attach()
    assert not all(torch.equal(a, unprompted.test_step(_cotta_batch(seed))[0].seg_logits.data
                               .argmax(0)) for a, seed in zip(labels, sum(STREAM, [])))


def test_svdp_prompt_is_the_reference_placement():
    from stag_seg.models import SparsePrompt
    prompt = SparsePrompt(sparse_rate=0.001, input_size=(40, 80), seed=0)
    assert prompt.num_pixels == 3
    rng = np.random.default_rng(0)
    unc = rng.random((80, 160)).astype(np.float32)
    for size, flip in (((20, 40), False), ((50, 100), True), ((80, 160), False)):
        got = prompt.prompt_map(prompt.positions(unc, size), size, flip)
        resized = zoom(unc, (size[0] / 80, size[1] / 160))
        top = np.argsort(resized.reshape(-1))[-3:]
        want = torch.zeros(3, *size)
        for i, idx in enumerate(top):
            want[:, idx // size[1], idx % size[1]] = prompt.patch.detach()[i, :, 0, 0]
        want = want.flip(-1) if flip else want
        assert torch.equal(got[0], want)
    with pytest.raises(ValueError, match='prompts no pixel'):
        SparsePrompt(sparse_rate=1e-6, input_size=(10, 10))
