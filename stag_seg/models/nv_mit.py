"""``NVMixVisionTransformer``: MMSeg's MiT backbone with the LayerNorm eps of NVlabs' code.

NVlabs' ``mix_transformer.py`` (the SegFormer release, and the model behind the CoTTA
Cityscapes->ACDC table) builds the norm of each overlapping patch embedding and the norm after
each attention's spatial reduction as ``nn.LayerNorm(dim)``, eps 1e-5, and every other norm
(``norm1``/``norm2`` of the blocks, the stage norms) with eps 1e-6. MMSeg's
``MixVisionTransformer`` uses its ``norm_cfg`` (eps 1e-6) everywhere. MiT-B5 has 4 patch
embeddings and 49 spatial-reduction norms (every block of stages 1-3); this class gives those
the NVlabs eps, so that a converted NVlabs checkpoint computes exactly what NVlabs' code does.
"""
from __future__ import annotations

from mmseg.models.backbones import MixVisionTransformer
from mmseg.models.backbones.mit import EfficientMultiheadAttention
from mmseg.models.utils import PatchEmbed
from mmseg.registry import MODELS
from torch import nn

__all__ = ['NVMixVisionTransformer']


@MODELS.register_module()
class NVMixVisionTransformer(MixVisionTransformer):
    """MixVisionTransformer whose patch-embedding and spatial-reduction norms use ``nv_eps``.

    Args:
        nv_eps (float): The eps of those norms. Defaults to 1e-5 (``nn.LayerNorm``'s default,
            what NVlabs' code uses).
        **kwargs: ``MixVisionTransformer``'s arguments (``embed_dims``, ``num_layers``, ...;
            ``norm_cfg`` keeps setting every other norm).
    """

    def __init__(self, nv_eps: float = 1e-5, **kwargs) -> None:
        super().__init__(**kwargs)
        if nv_eps <= 0:
            raise ValueError(f'NVMixVisionTransformer.nv_eps must be > 0, got {nv_eps}')
        self.nv_eps = nv_eps
        for module in self.modules():
            norm = getattr(module, 'norm', None)
            if isinstance(module, (PatchEmbed, EfficientMultiheadAttention)) \
                    and isinstance(norm, nn.LayerNorm):
                norm.eps = nv_eps
