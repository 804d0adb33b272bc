"""``TTAEncoderDecoder`` and ``TTACascadeEncoderDecoder``: MMSeg segmentors that adapt while
they predict."""
from __future__ import annotations

from mmseg.models.segmentors import CascadeEncoderDecoder, EncoderDecoder
from mmseg.registry import MODELS

from .tta_mixin import AdaptiveModelMixin

__all__ = ['TTACascadeEncoderDecoder', 'TTAEncoderDecoder']


@MODELS.register_module()
class TTAEncoderDecoder(AdaptiveModelMixin, EncoderDecoder):
    """Encoder-decoder segmentor with online test-time adaptation in ``test_step``.

    Everything MMSeg's ``EncoderDecoder`` does stays (``predict`` included); only
    ``test_step`` changes::

        test_step(): tta_adapter.test_step(): data_preprocessor() -> adapt_step(
                         inference() with grad, tap on decode_head.conv_seg  # prediction
                         -> tta_method.loss() + regularizers -> one backward -> step)
                     -> postprocess_result(prediction made before the update)
                     -> the step's statistics in each sample's metainfo

    Args:
        tta_method (dict): Config of a method in ``TTA_METHODS``, e.g.
            ``dict(type='Tent', regularizers=[dict(type='STAG')])``. Defaults to
            ``dict(type='Source')``.
        adapt_optim_wrapper (dict, optional): The optim wrapper of methods that update
            parameters, when ``tta_method`` has no ``optim_wrapper`` of its own, e.g.
            ``dict(optimizer=dict(type='Adam', lr=7.5e-6))``. Defaults to None.
        **kwargs: ``EncoderDecoder``'s arguments (backbone, decode_head, test_cfg, ...).

    Note:
        See :class:`~stag_seg.models.tta_mixin.AdaptiveModelMixin` for when the method is
        attached and how train/eval modes are kept.
    """

    def __init__(self,
                 tta_method: dict | None = None,
                 adapt_optim_wrapper: dict | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_adaptation(tta_method, adapt_optim_wrapper)


@MODELS.register_module()
class TTACascadeEncoderDecoder(AdaptiveModelMixin, CascadeEncoderDecoder):
    """Cascade segmentor (OCRNet) with online test-time adaptation in ``test_step``.

    As :class:`TTAEncoderDecoder`, with the tap on the ``conv_seg`` of the last stage
    (``decode_head[-1]``), whose output is the prediction. Cascades whose last stage is not a
    per-pixel linear classifier (PointRend's ``PointHead``) are refused when the method is
    attached, with the reason.

    Args:
        tta_method (dict): As :class:`TTAEncoderDecoder`.
        adapt_optim_wrapper (dict, optional): As :class:`TTAEncoderDecoder`.
        **kwargs: ``CascadeEncoderDecoder``'s arguments (num_stages, backbone, decode_head as a
            list, ...).
    """

    def __init__(self,
                 tta_method: dict | None = None,
                 adapt_optim_wrapper: dict | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_adaptation(tta_method, adapt_optim_wrapper)
