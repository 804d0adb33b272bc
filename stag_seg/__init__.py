"""stag_seg: continual test-time adaptation for OpenMMLab, with the STAG regularizer.

Importing the package registers everything it offers in the OpenMMLab registries, so MM
configs can name it after ``custom_imports = dict(imports=['stag_seg'])``.
"""
from . import compat  # noqa: I001  (first: it prepares mmcv before anything imports mmseg)

compat.install_mmcv_ops_fallback()
compat.register_safe_globals()
compat.guard_mmengine_checkpoint_loading()
compat.allow_cpu_distributed()
compat.map_renamed_distributions()

from .version import __version__  # noqa: E402
# the layers, lowest first (docs/design.md draws them); each imports only those before it
from . import registry, stag, methods, models, datasets, evaluation, engine  # noqa: E402,F401

__all__ = ['__version__']
