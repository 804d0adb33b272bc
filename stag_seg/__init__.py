"""stag_seg: continual test-time adaptation for OpenMMLab, with the STAG regularizer.

Importing the package registers what a config can name in the OpenMMLab registries, so MM
configs can use it after ``custom_imports = dict(imports=['stag_seg'])``. The only other change
it makes to its host is the pure-PyTorch ``mmcv.ops`` where mmcv-lite has no compiled ops
(:mod:`stag_seg.compat`).
"""
from .compat import mmcv_ops  # noqa: I001  (first: it prepares mmcv before anything imports mmseg)

mmcv_ops.install_mmcv_ops_fallback()

from .version import __version__  # noqa: E402
# the layers, lowest first (docs/design.md draws them); each imports only those before it
from . import registry, stag, methods, models, datasets, evaluation, engine  # noqa: E402,F401

__all__ = ['__version__']
