"""Generators of benchmark data: what makes the images the readers of ``stag_seg.datasets`` read.

- :mod:`.scenes`: procedural street scenes with Cityscapes labels and metric depth;
- :mod:`.weather`: the four ACDC conditions rendered onto an image with its depth, and the
  registered pipeline transform ``ApplyWeather``;
- :mod:`.corruptions`: the 15 ImageNet-C corruptions at severities 1-5.

The domain names they share with the readers live in :mod:`stag_seg.datasets.benchmarks`.
"""
from .corruptions import (CORRUPTION_PARAMS, CORRUPTION_PRESETS, CORRUPTION_TABLES,
                          FROST_SOURCES, MONOTONE_CHANGES, corrupt, corruption_params,
                          frost_photos, frost_source, resolve_preset)
from .scenes import IGNORE_INDEX, SCENE_CLASSES, SKY_DEPTH, render_scene
from .weather import (CONDITIONS, DEFAULT_SEVERITY, ApplyWeather, apply_condition,
                      flat_ground_depth, fog, night, rain, snow)

__all__ = [
    'ApplyWeather', 'CONDITIONS', 'CORRUPTION_PARAMS', 'CORRUPTION_PRESETS', 'CORRUPTION_TABLES',
    'DEFAULT_SEVERITY', 'FROST_SOURCES', 'IGNORE_INDEX', 'MONOTONE_CHANGES', 'SCENE_CLASSES',
    'SKY_DEPTH', 'apply_condition', 'corrupt', 'corruption_params', 'flat_ground_depth', 'fog',
    'frost_photos', 'frost_source', 'night', 'rain', 'render_scene', 'resolve_preset', 'snow'
]
