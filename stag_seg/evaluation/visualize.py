"""Pictures of predictions: input | prediction | ground truth panels and labelled image grids."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = ['classification_grid', 'colorize', 'default_palette', 'segmentation_panel']

IGNORE_COLOR = (0, 0, 0)
_GAP = 4  # white pixels between panels
_HEADER = 22  # height of the title strip above each panel


def default_palette(num_classes: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """A fixed palette for data sets that define none (the same colours every run)."""
    rng = np.random.default_rng(seed)
    return [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(num_classes)]


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) class ids to an (H, W, 3) RGB image; ids outside the palette (255) are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = IGNORE_COLOR
    lut[:min(len(palette), 256)] = np.asarray(palette[:256], np.uint8)
    return lut[np.clip(label, 0, 255).astype(np.int64)]


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    header = np.full((_HEADER, image.shape[1], 3), 255, np.uint8)
    cv2.putText(header, title, (4, _HEADER - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([header, image], axis=0)


def segmentation_panel(image: np.ndarray, pred: np.ndarray, gt: np.ndarray | None,
                       palette: Sequence[Sequence[int]], title: str = '') -> np.ndarray:
    """Input, prediction and (when given) ground truth side by side, as one RGB image.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB input, at the size of ``pred`` (resized if not).
        pred (np.ndarray): (H, W) predicted class ids.
        gt (np.ndarray, optional): (H, W) ground-truth ids; 255 (ignored) is drawn black.
        palette (Sequence): RGB colour per class id (the data set's, e.g. Cityscapes').
        title (str): Added to the input's title (e.g. the round and domain).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'segmentation_panel needs an (H, W, 3) image, got {image.shape}')
    height, width = pred.shape
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    panels = [_titled(image.astype(np.uint8), f'input {title}'.strip()),
              _titled(colorize(pred, palette), 'prediction')]
    if gt is not None:
        if gt.shape != pred.shape:
            raise ValueError(f'ground truth {gt.shape} and prediction {pred.shape} differ in size')
        panels.append(_titled(colorize(gt, palette), 'ground truth'))
    gap = np.full((panels[0].shape[0], _GAP, 3), 255, np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, axis=1)


def classification_grid(images: Sequence[np.ndarray], preds: Sequence[int],
                        gts: Sequence[int | None], classes: Sequence[str] | None,
                        path: str, title: str = '', cols: int = 4) -> str:
    """A grid of RGB images titled with the predicted and the true label (green if right)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if not images:
        raise ValueError('classification_grid needs at least one image')

    def name(idx: int | None) -> str:
        if idx is None:
            return '?'
        return classes[idx] if classes is not None and 0 <= idx < len(classes) else str(idx)

    cols = min(cols, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, image, pred, gt in zip(axes.flat, images, preds, gts):
        ax.imshow(image)
        ax.set_title(f'pred {name(pred)}\ntrue {name(gt)}', fontsize=8,
                     color='green' if gt is not None and pred == gt else 'red')
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
