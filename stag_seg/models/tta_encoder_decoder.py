"""``TTAEncoderDecoder``: an MMSeg ``EncoderDecoder`` that adapts while it predicts."""
from __future__ import annotations

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from .. import compat
from ..engine.adapt import adapt_step
from ..methods.base import BaseTTAMethod, build_method
from .tap import ClassifierTap, tap_decode_head

__all__ = ['TTAEncoderDecoder']


@MODELS.register_module()
class TTAEncoderDecoder(EncoderDecoder):
    """Encoder-decoder segmentor with online test-time adaptation in ``test_step``.

    Everything MMSeg's ``EncoderDecoder`` does stays; only the test path changes::

        test_step(): data_preprocessor() -> adapt_step(
                         inference() with grad, tap on decode_head.conv_seg  # prediction
                         -> tta_method.loss() + regularizers -> one backward -> step)
                     -> postprocess_result(prediction made before the update)

    The method is configured on the first ``test_step``, after the runner loaded the
    checkpoint, so the state it snapshots for resets is the source model's.

    Args:
        tta_method (dict): Config of a method in ``TTA_METHODS``, e.g.
            ``dict(type='Tent', regularizers=[dict(type='STAG')])``. Defaults to
            ``dict(type='Source')``.
        adapt_optim_wrapper (dict, optional): The optim wrapper of methods that update
            parameters, when ``tta_method`` has no ``optim_wrapper`` of its own, e.g.
            ``dict(optimizer=dict(type='Adam', lr=7.5e-6))``. Defaults to None.
        **kwargs: ``EncoderDecoder``'s arguments (backbone, decode_head, test_cfg, ...).

    Note:
        The runner calls ``model.eval()`` before testing; :meth:`train` keeps the layers the
        method put in train mode (BatchNorm with test-batch statistics) in that mode.
    """

    def __init__(self,
                 tta_method: dict | None = None,
                 adapt_optim_wrapper: dict | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        cfg = dict(type='Source') if tta_method is None else tta_method
        # a plain attribute, not a submodule: the method holds a reference to this model
        self.tta_method: BaseTTAMethod = build_method(cfg, adapt_optim_wrapper)
        self._tap: ClassifierTap | None = None

    def test_step(self, data: dict | tuple | list) -> SampleList:
        """Predict a batch with the current weights, then adapt on it once."""
        data = self.data_preprocessor(data, False)
        return self.predict(data['inputs'], data['data_samples'])

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        if not self.tta_method.configured:
            self.configure_adaptation()
        if data_samples is not None:
            metas = [dict(sample.metainfo) for sample in data_samples]  # never write theirs
        else:
            shape = inputs.shape[2:]
            metas = [dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                          padding_size=[0, 0, 0, 0]) for _ in range(inputs.size(0))]
        seg_logits = adapt_step(self.tta_method, self._tap,
                                lambda: self.inference(inputs, [dict(m) for m in metas]),
                                valid=lambda logits: self._padding_mask(logits, inputs, metas))
        return self.postprocess_result(seg_logits.detach(), data_samples)

    def configure_adaptation(self) -> None:
        """Prepare the model for its method: SyncBN without a process group, tap, modes."""
        compat.revert_sync_batchnorm(self)
        if self.tta_method.needs_grad:
            self._tap = tap_decode_head(self)
        self.tta_method.configure(self)

    def reset_adaptation(self) -> None:
        """Return to the source weights and method state (episodic protocols)."""
        self.tta_method.reset()

    def train(self, mode: bool = True) -> 'TTAEncoderDecoder':
        super().train(mode)
        if self.tta_method.configured:
            self.tta_method.apply_modes()
        return self

    def _padding_mask(self, logits: Tensor, inputs: Tensor, metas: list[dict]) -> Tensor | None:
        """(N, h, w) mask of the logits that cover image content rather than batch padding.

        Reads the padding (left, right, top, bottom) the way ``postprocess_result`` does
        (``img_padding_size`` from the data preprocessor, else ``padding_size``); None when
        nothing is padded or the logits are not one map.
        """
        pads = [m.get('img_padding_size', m.get('padding_size', [0, 0, 0, 0])) for m in metas]
        if logits.dim() != 4 or not any(any(p) for p in pads):
            return None
        height, width = inputs.shape[2:]
        h_out, w_out = logits.shape[2:]
        rows = (torch.arange(h_out, device=logits.device).view(-1, 1) + 0.5) * height / h_out
        cols = (torch.arange(w_out, device=logits.device).view(1, -1) + 0.5) * width / w_out
        return torch.stack([(rows >= top) & (rows < height - bottom) & (cols >= left)
                            & (cols < width - right) for left, right, top, bottom in pads])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        key = f'{prefix}decode_head.conv_seg.weight'
        if key in state_dict and hasattr(self.decode_head, 'conv_seg'):
            got, want = state_dict[key].shape[0], self.decode_head.conv_seg.weight.shape[0]
            if got != want:
                raise ValueError(
                    f'the checkpoint\'s {key} has {got} classes (shape '
                    f'{tuple(state_dict[key].shape)}), but the model\'s decode_head.num_classes '
                    f'is {want}; set model.decode_head.num_classes={got} or use a checkpoint '
                    f'trained for {want} classes')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
