"""``TTAImageClassifier``: an mmpretrain ``ImageClassifier`` that adapts while it predicts."""
from __future__ import annotations

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS

from .tta_mixin import AdaptiveModelMixin

__all__ = ['TTAImageClassifier']


@MODELS.register_module()
class TTAImageClassifier(AdaptiveModelMixin, ImageClassifier):
    """Image classifier with online test-time adaptation in ``test_step``.

    Everything mmpretrain's ``ImageClassifier`` does stays; ``test_step`` predicts each batch
    with the current weights (the tap on the head's last ``nn.Linear`` records logits and
    features), then updates once on the method's loss plus its regularizers.

    Args:
        tta_method (dict): Config of a method in ``TTA_METHODS``. Defaults to
            ``dict(type='Source')``.
        adapt_optim_wrapper (dict, optional): The optim wrapper of methods that update
            parameters, when ``tta_method`` has none. Defaults to None.
        **kwargs: ``ImageClassifier``'s arguments (backbone, neck, head, ...).
    """

    def __init__(self,
                 tta_method: dict | None = None,
                 adapt_optim_wrapper: dict | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_adaptation(tta_method, adapt_optim_wrapper)
