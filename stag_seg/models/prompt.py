"""SVDP's sparse visual domain prompt, a part of the network that a config gives a backbone.

Paper: Yang et al., "Exploring Sparse Visual Prompt for Domain Adaptive Dense Prediction",
AAAI 2024 (https://arxiv.org/abs/2303.09792). Reference: https://github.com/Anonymous-012/SVDP,
``mmseg/models/backbones/prompt.py`` (``SparsePrompter_uncertainty``) and ``mit_b5_prompt`` in
``mmseg/models/backbones/mix_transformer.py``.

A config puts the prompt on its backbone by wrapping the backbone's config::

    model = dict(backbone=dict(
        _delete_=True, type='SparsePromptedBackbone', backbone={{_base_.model.backbone}},
        prompt=dict(sparse_rate=0.001, input_size=(540, 960), seed=42)))

The backbone stays what it was (its checkpoint keys unchanged) and gains a submodule
``prompt`` holding ``patch``, one RGB value per prompted pixel, so the state-dict key is the
reference's ``backbone.prompt.patch``; a source checkpoint does not have it, and it keeps its
random initial values, as in the reference. The prompt does nothing by itself: the SVDP method
places it, per view, at the pixels the teacher is least sure of (:meth:`SparsePrompt.positions`)
and adds it to the normalised image before the network (:meth:`SparsePrompt.prompt_map`), as the
reference's ``forward`` adds it before the first patch embedding.
"""
from __future__ import annotations

import numpy as np
import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

__all__ = ['SparsePrompt', 'SparsePromptedBackbone']


@MODELS.register_module()
class SparsePrompt(nn.Module):
    """``int(H * W * sparse_rate)`` prompted pixels of an ``input_size`` (H, W) input, each with
    three values added to the normalised image.

    Args:
        sparse_rate (float): The prompted fraction of the input's pixels. Defaults to 0.001
            (518 of 540 x 960).
        input_size (tuple[int, int]): The network input the count is taken from (the
            reference fixes 540 x 960). Defaults to (540, 960).
        seed (int): Seed of the standard normal initial values. Defaults to 42.
    """

    def __init__(self, sparse_rate: float = 0.001, input_size: tuple[int, int] = (540, 960),
                 seed: int = 42) -> None:
        super().__init__()
        height, width = input_size
        num = int(height * width * sparse_rate)
        if num < 1:
            raise ValueError(f'SparsePrompt: sparse_rate={sparse_rate} of {height}x{width} '
                             'prompts no pixel')
        self.sparse_rate, self.input_size, self.seed = sparse_rate, tuple(input_size), seed
        generator = torch.Generator().manual_seed(seed)
        self.patch = nn.Parameter(torch.randn(num, 3, 1, 1, generator=generator))

    @property
    def num_pixels(self) -> int:
        return self.patch.size(0)

    def extra_repr(self) -> str:
        return f'num_pixels={self.num_pixels}, input_size={self.input_size}, seed={self.seed}'

    def positions(self, uncertainty: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The flat indices (into an ``size`` map) of the prompted pixels, least uncertain
        first: the uncertainty map resized to ``size`` with a cubic spline
        (``scipy.ndimage.zoom``'s defaults), the last ``num_pixels`` of its ``np.argsort``."""
        from scipy.ndimage import zoom
        height, width = size
        factors = (height / uncertainty.shape[0], width / uncertainty.shape[1])
        resized = zoom(uncertainty, factors) if factors != (1.0, 1.0) else uncertainty
        if resized.shape != (height, width):
            raise ValueError(f'SparsePrompt: zoom gave {resized.shape} for a {size} view')
        return np.argsort(resized.reshape(-1))[-self.num_pixels:]

    def prompt_map(self, positions: np.ndarray, size: tuple[int, int], flip: bool) -> Tensor:
        """(1, 3, h, w): zero, with ``patch[i]`` at ``positions[i]``; mirrored for a flipped
        view, so that the prompt stays on the same scene points."""
        height, width = size
        values = self.patch.detach()[:, :, 0, 0]  # (num, 3)
        flat = values.new_zeros(3, height * width)
        flat[:, torch.from_numpy(np.ascontiguousarray(positions)).to(values.device)] = values.t()
        out = flat.view(1, 3, height, width)
        return out.flip(-1) if flip else out


@MODELS.register_module()
def SparsePromptedBackbone(backbone: dict, prompt: dict | None = None) -> nn.Module:  # noqa: N802
    """Build ``backbone`` and give it a :class:`SparsePrompt` (``prompt``: its arguments) as
    ``backbone.prompt``; the backbone's own forward and checkpoint keys are unchanged."""
    module = MODELS.build(backbone)
    if hasattr(module, 'prompt'):
        raise ValueError(f'SparsePromptedBackbone: {type(module).__name__} already has an '
                         "attribute 'prompt'")
    module.prompt = SparsePrompt(**(prompt or {}))
    return module
