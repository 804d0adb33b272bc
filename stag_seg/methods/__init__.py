"""TTA objectives. Each is registered in ``stag_seg.registry.TTA_METHODS``."""
from .base import BaseTTAMethod, MethodLoss, build_method, valid_mean
from .norm import Norm
from .params import NORM_TYPES, collect_norm_params, norm_layers, use_batch_statistics
from .source import Source
from .tent import Tent

__all__ = [
    'BaseTTAMethod', 'MethodLoss', 'NORM_TYPES', 'build_method', 'Norm', 'Source', 'Tent', 'collect_norm_params',
    'norm_layers', 'use_batch_statistics', 'valid_mean',
]
