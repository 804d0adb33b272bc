"""Datasets: the readers of the benchmarks, the pipeline transforms and the stream orders.

Readers and transforms: ACDC (``acdc``), the ImageNet-C / CIFAR-C loaders and the array loader
(``imagenet_c``), the stream orders (mixed domains, online label shift; ``streams``),
``KeepOriginalImage`` (``transforms``), and what turns ``test_cfg.domains`` into data loaders
(``domains``); ``domain_names`` holds the domain names the benchmarks define (ACDC's conditions,
the 15 corruptions), which readers and generators share.

The generators, which make benchmark data (synthetic street scenes, the ACDC weather conditions
and their transform ``ApplyWeather``, the ImageNet-C corruptions, the writers of whole data
sets), are :mod:`stag_seg.datasets.generators`; ``import stag_seg`` does not load them. A config
that names ``ApplyWeather`` imports them:
``custom_imports = dict(imports=['stag_seg', 'stag_seg.datasets.generators'])``.
"""
from .acdc import ACDCDataset
from .domain_names import ACDC_CONDITIONS, CORRUPTIONS
from .imagenet_c import CIFARCDataset, ImageNetCDataset, NumpyClsDataset
from .streams import ORDERS, StreamDataset, stream_order
from .transforms import KeepOriginalImage

__all__ = [
    'ACDCDataset', 'ACDC_CONDITIONS', 'CIFARCDataset', 'CORRUPTIONS', 'ImageNetCDataset',
    'KeepOriginalImage', 'NumpyClsDataset', 'ORDERS', 'StreamDataset', 'stream_order',
]
