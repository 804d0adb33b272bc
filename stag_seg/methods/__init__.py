"""TTA objectives, each registered in ``stag_seg.registry.TTA_METHODS``, and the step that runs
one of them on a batch (:func:`adapt_step`)."""
from .base import BaseTTAMethod, MethodLoss, build_method, valid_mean
from .cotta import CoTTA
from .dat import DAT
from .deyo import DeYO, patch_shuffle, shuffle_patches_per_sample, unshuffle_patches
from .eata import EATA, estimate_fisher
from .hybrid_tta import HybridTTA, ShiftDetector
from .memory import CategoryBalancedMemory
from .norm import Norm
from .params import NORM_TYPES, collect_norm_params, norm_layers, use_batch_statistics
from .rdumb import RDumb
from .rmt import RMT
from .roid import ROID
from .robust_bn import RobustBatchNorm, replace_batchnorm, restore_batchnorm
from .rotta import RoTTA
from .sar import SAR
from .source import Source
from .step import Step, adapt_step, sam_update, update, warm_up
from .svdp import SVDP
from .teachers import ema_update, frozen_copy
from .tent import Tent

__all__ = [
    'BaseTTAMethod', 'CategoryBalancedMemory', 'CoTTA', 'DAT', 'DeYO', 'EATA', 'HybridTTA',
    'MethodLoss', 'ShiftDetector',
    'NORM_TYPES', 'Norm', 'RDumb', 'RMT', 'ROID', 'RoTTA', 'RobustBatchNorm', 'SAR', 'SVDP',
    'Source', 'Step', 'Tent', 'adapt_step', 'build_method', 'collect_norm_params', 'ema_update',
    'estimate_fisher', 'frozen_copy', 'norm_layers', 'patch_shuffle', 'replace_batchnorm',
    'restore_batchnorm', 'sam_update', 'shuffle_patches_per_sample',
    'unshuffle_patches', 'update', 'use_batch_statistics', 'valid_mean', 'warm_up',
]
