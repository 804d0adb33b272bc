"""TTA objectives, each registered in ``stag_seg.registry.TTA_METHODS``, and the step that runs
one of them on a batch (:func:`adapt_step`)."""
from .base import BaseTTAMethod, MethodLoss, build_method, valid_mean
from .cotta import CoTTA
from .dat import DAT
from .deyo import DeYO, patch_shuffle, shuffle_patches_per_sample, unshuffle_patches
from .eata import EATA, estimate_fisher
from .norm import Norm
from .params import NORM_TYPES, collect_norm_params, norm_layers, use_batch_statistics
from .sar import SAR
from .source import Source
from .svdp import SVDP
from .step import Step, adapt_step, sam_update, update
from .tent import Tent

__all__ = [
    'BaseTTAMethod', 'CoTTA', 'DAT', 'DeYO', 'EATA', 'MethodLoss', 'NORM_TYPES', 'Norm', 'SAR',
    'SVDP', 'Source', 'Step', 'Tent', 'adapt_step', 'build_method', 'collect_norm_params',
    'estimate_fisher', 'norm_layers', 'patch_shuffle', 'sam_update',
    'shuffle_patches_per_sample', 'unshuffle_patches', 'update', 'use_batch_statistics',
    'valid_mean',
]
