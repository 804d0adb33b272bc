"""The pieces of CoTTA's segmentation tarball (mmseg 0.x) that DAT and SVDP fork, restated in
plain PyTorch on MMSeg's own inference, for the fidelity tests: the multi-scale test pipeline,
``aug_test`` (per-view probabilities at the original size) and the training forward's per-pixel
cross entropy."""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def rescaled(original, ratio, input_hw):
    """``Resize(keep_ratio=True)`` of the test pipeline at ``img_scale * ratio``: the factor is
    ``min(long side / long edge, short side / short edge)``, bilinear (cv2), from the
    original (H, W, 3) uint8 image."""
    h_in, w_in = input_hw
    h_ori, w_ori = original.shape[:2]
    target_long, target_short = int(w_in * ratio), int(h_in * ratio)
    factor = min(max(target_long, target_short) / max(h_ori, w_ori),
                 min(target_long, target_short) / min(h_ori, w_ori))
    size = (int(w_ori * factor + 0.5), int(h_ori * factor + 0.5))
    return cv2.resize(original, size, interpolation=cv2.INTER_LINEAR)


def views(original, input_hw, mean, std, scales=SCALES):
    """The 14 normalised views, scale by scale, each unflipped then flipped: (1, 3, h, w)."""
    out = []
    for ratio in scales:
        img = rescaled(original, ratio, input_hw)
        for flip in (False, True):
            view = np.ascontiguousarray(img[:, ::-1] if flip else img)
            x = torch.from_numpy(view.transpose(2, 0, 1)).float()[None]
            out.append(((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), flip))
    return out


@torch.no_grad()
def aug_test(model, view_list, size, transform=None):
    """The modified ``aug_test``: every view through slide inference (MMSeg's own), the logits
    resized to ``size``, softmax, flipped views flipped back. Returns (avg_label, per-view
    max-prob list, per-view argmax list, per-view probability list)."""
    probs = []
    for j, (x, flip) in enumerate(view_list):
        if transform is not None:
            x = transform(j, x)
        logits = model.slide_inference(x, [dict(img_shape=tuple(x.shape[2:]))])
        p = F.interpolate(logits, size=size, mode='bilinear', align_corners=False).softmax(1)
        probs.append(p.flip(-1) if flip else p)
    total = probs[0]
    for p in probs[1:]:
        total = total + p
    avg = total / len(probs)
    return (avg.argmax(1), [p.max(1)[0] for p in probs], [p.argmax(1) for p in probs], probs)


def train_loss_map(model, x, label):
    """``forward_train`` with ``CrossEntropyLoss(reduction='none')``: whole image, the decoder
    logits resized once to the label's size, per-pixel cross entropy; (1, H, W)."""
    logits = model.decode_head.forward(model.extract_feat(x))
    logits = F.interpolate(logits, size=label.shape[1:], mode='bilinear', align_corners=False)
    return F.cross_entropy(logits, label, reduction='none', ignore_index=255)


@torch.no_grad()
def ema(teacher, student, alpha):
    """``update_ema_variables``: ``alpha * t + (1 - alpha) * s`` for every parameter pair."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.data[:] = alpha * t.data[:] + (1 - alpha) * s.data[:]
