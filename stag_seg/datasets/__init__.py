"""Datasets: ACDC, the ACDC weather conditions as transforms, and synthetic street scenes."""
from .acdc import ACDC_CONDITIONS, ACDCDataset
from .synthetic import IGNORE_INDEX, SCENE_CLASSES, SKY_DEPTH, render_scene
from .weather import (CONDITIONS, DEFAULT_SEVERITY, ApplyWeather, apply_condition,
                      flat_ground_depth, fog, night, rain, snow)

__all__ = [
    'ACDC_CONDITIONS', 'ACDCDataset', 'ApplyWeather', 'CONDITIONS', 'DEFAULT_SEVERITY',
    'IGNORE_INDEX', 'SCENE_CLASSES', 'SKY_DEPTH', 'apply_condition', 'flat_ground_depth', 'fog',
    'night', 'rain', 'render_scene', 'snow'
]
