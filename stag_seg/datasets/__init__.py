"""Datasets: ACDC, the ACDC weather conditions as transforms, synthetic street scenes, and the
stream orders (mixed domains, online label shift), and the ImageNet-C / CIFAR-C loaders."""
from .acdc import ACDC_CONDITIONS, ACDCDataset
from .corrupted import CORRUPTIONS, CIFARCDataset, ImageNetCDataset
from .streams import ORDERS, StreamDataset, stream_order
from .synthetic import IGNORE_INDEX, SCENE_CLASSES, SKY_DEPTH, render_scene
from .weather import (CONDITIONS, DEFAULT_SEVERITY, ApplyWeather, apply_condition,
                      flat_ground_depth, fog, night, rain, snow)

__all__ = [
    'ACDC_CONDITIONS', 'ACDCDataset', 'ApplyWeather', 'CIFARCDataset', 'CONDITIONS',
    'CORRUPTIONS', 'DEFAULT_SEVERITY', 'ImageNetCDataset',
    'IGNORE_INDEX', 'ORDERS', 'SCENE_CLASSES', 'SKY_DEPTH', 'StreamDataset', 'apply_condition',
    'flat_ground_depth', 'fog', 'night', 'rain', 'render_scene', 'snow', 'stream_order'
]
