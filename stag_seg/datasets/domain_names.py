"""What the benchmarks define: their domains, in the order the protocols visit them.

Readers (:mod:`stag_seg.datasets.acdc`, :mod:`stag_seg.datasets.imagenet_c`) and generators
(:mod:`stag_seg.datasets.generators`) both take these names from here, so that neither depends on
the other:

- ACDC (Sakaridis et al., ICCV 2021): four adverse conditions, in the order of the CoTTA
  continual protocol;
- ImageNet-C and CIFAR-10-C / CIFAR-100-C (Hendrycks & Dietterich, ICLR 2019): 15 corruptions,
  in the order of the benchmarks' tables; and the image files of the ImageNet-C folder layout.
"""
from __future__ import annotations

__all__ = ['ACDC_CONDITIONS', 'CORRUPTIONS', 'IMAGE_SUFFIXES']

#: The ACDC conditions, in the order of the CoTTA continual protocol.
ACDC_CONDITIONS = ('fog', 'night', 'rain', 'snow')
#: The 15 corruptions of the benchmarks, in their usual order.
CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur',
               'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog', 'brightness', 'contrast',
               'elastic_transform', 'pixelate', 'jpeg_compression')
#: Suffixes (lower case) of the image files of an ImageNet-style folder tree.
IMAGE_SUFFIXES = ('.jpeg', '.jpg', '.png')
