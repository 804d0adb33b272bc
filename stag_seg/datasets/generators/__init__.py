"""Generators of benchmark data: what makes the images the readers of ``stag_seg.datasets`` read.

- :mod:`.scenes`: procedural street scenes with Cityscapes labels and metric depth;
- :mod:`.weather`: the four ACDC conditions rendered onto an image with its depth, and the
  registered pipeline transform ``ApplyWeather``;
- :mod:`.corruptions`: the 15 ImageNet-C corruptions at severities 1-5;
- :mod:`.synthetic_acdc`, :mod:`.corrupted_sets`, :mod:`.digits`: the writers of the embedded
  Cityscapes→ACDC tree, of the -C version of a data set, and of the clean digits (the
  ``tools/make_*.py`` command lines call them).

The domain names they share with the readers live in :mod:`stag_seg.datasets.domain_names`.
"""
from .corrupted_sets import SEVERITIES, check_options, image_rng, path_key, write_corrupted_set
from .corruptions import (CORRUPTION_PARAMS, CORRUPTION_PRESETS, CORRUPTION_TABLES,
                          FROST_SOURCES, MONOTONE_CHANGES, corrupt, corruption_params,
                          frost_photos, frost_source, resolve_preset)
from .digits import DIGIT_SIZE, render_digits, write_digits
from .scenes import IGNORE_INDEX, SCENE_CLASSES, SKY_DEPTH, render_scene
from .synthetic_acdc import (ACDC_RETAINED, calibration_tasks, choose_severity, parse_severity,
                             write_synthetic_acdc)
from .weather import (CONDITIONS, DEFAULT_SEVERITY, ApplyWeather, apply_condition,
                      flat_ground_depth, fog, night, rain, snow)

__all__ = [
    'ACDC_RETAINED', 'ApplyWeather', 'CONDITIONS', 'CORRUPTION_PARAMS', 'CORRUPTION_PRESETS',
    'CORRUPTION_TABLES', 'DEFAULT_SEVERITY', 'DIGIT_SIZE', 'FROST_SOURCES', 'IGNORE_INDEX',
    'MONOTONE_CHANGES', 'SCENE_CLASSES', 'SEVERITIES', 'SKY_DEPTH', 'apply_condition',
    'calibration_tasks', 'check_options', 'choose_severity', 'corrupt', 'corruption_params',
    'flat_ground_depth', 'fog', 'frost_photos', 'frost_source', 'image_rng', 'night',
    'parse_severity', 'path_key', 'rain', 'render_digits', 'render_scene', 'resolve_preset',
    'snow', 'write_corrupted_set', 'write_digits', 'write_synthetic_acdc'
]
