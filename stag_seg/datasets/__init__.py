"""Datasets: ACDC, the ACDC weather conditions as transforms, synthetic street scenes, the
stream orders (mixed domains, online label shift), the ImageNet-C / CIFAR-C loaders and the
ImageNet-C corruptions that make such data sets."""
from .acdc import ACDC_CONDITIONS, ACDCDataset
from .corrupted import CORRUPTIONS, CIFARCDataset, ImageNetCDataset, NumpyClsDataset
from .corruptions import CORRUPTION_PARAMS, CORRUPTION_PRESETS, corrupt, resolve_preset
from .streams import ORDERS, StreamDataset, stream_order
from .transforms import KeepOriginalImage
from .synthetic import IGNORE_INDEX, SCENE_CLASSES, SKY_DEPTH, render_scene
from .weather import (CONDITIONS, DEFAULT_SEVERITY, ApplyWeather, apply_condition,
                      flat_ground_depth, fog, night, rain, snow)

__all__ = [
    'ACDC_CONDITIONS', 'ACDCDataset', 'ApplyWeather', 'CIFARCDataset', 'CONDITIONS',
    'CORRUPTION_PARAMS', 'CORRUPTION_PRESETS', 'CORRUPTIONS', 'DEFAULT_SEVERITY',
    'ImageNetCDataset', 'IGNORE_INDEX', 'KeepOriginalImage', 'NumpyClsDataset', 'ORDERS', 'SCENE_CLASSES', 'SKY_DEPTH', 'StreamDataset', 'apply_condition',
    'corrupt', 'flat_ground_depth', 'fog', 'night', 'rain', 'render_scene', 'resolve_preset',
    'snow', 'stream_order'
]
