"""Datasets: the readers of the benchmarks and the pipeline transforms, then their generators.

Readers and transforms live here: ACDC (``acdc``), the ImageNet-C / CIFAR-C loaders and the
array loader (``imagenet_c``), the stream orders (mixed domains, online label shift;
``streams``) and ``KeepOriginalImage`` (``transforms``); ``benchmarks`` holds the domain names
the benchmarks define (ACDC's conditions, the 15 corruptions), which readers and generators
share. The generators, which make benchmark data (synthetic street scenes, the ACDC weather
conditions with their transform ``ApplyWeather``, the ImageNet-C corruptions, and the writers
of whole data sets), live in ``generators/``; their main names are re-exported here.
"""
from .acdc import ACDCDataset
from .benchmarks import ACDC_CONDITIONS, CORRUPTIONS
from .imagenet_c import CIFARCDataset, ImageNetCDataset, NumpyClsDataset
from .streams import ORDERS, StreamDataset, stream_order
from .transforms import KeepOriginalImage
from .generators import (CONDITIONS, CORRUPTION_PARAMS, CORRUPTION_PRESETS, DEFAULT_SEVERITY,
                         IGNORE_INDEX, SCENE_CLASSES, SKY_DEPTH, ApplyWeather, apply_condition,
                         corrupt, flat_ground_depth, fog, night, rain, render_scene,
                         resolve_preset, snow)

__all__ = [
    # readers, transforms and the benchmarks' domains
    'ACDCDataset', 'CIFARCDataset', 'ImageNetCDataset', 'KeepOriginalImage', 'NumpyClsDataset',
    'StreamDataset', 'ORDERS', 'stream_order', 'ACDC_CONDITIONS', 'CORRUPTIONS',
    # generators (stag_seg.datasets.generators)
    'ApplyWeather', 'CONDITIONS', 'CORRUPTION_PARAMS', 'CORRUPTION_PRESETS', 'DEFAULT_SEVERITY',
    'IGNORE_INDEX', 'SCENE_CLASSES', 'SKY_DEPTH', 'apply_condition', 'corrupt',
    'flat_ground_depth', 'fog', 'night', 'rain', 'render_scene', 'resolve_preset', 'snow'
]
