"""Pipeline transforms that keep what an adaptation method needs besides the network input."""
from __future__ import annotations

from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

__all__ = ['KeepOriginalImage']


@TRANSFORMS.register_module()
class KeepOriginalImage(BaseTransform):
    """Keep the image as loaded, before any resize, under ``results[key]``.

    CoTTA's reference makes its teacher's multi-scale views from the original image, not from
    the resized network input (``CoTTA(view_source='original')``). Put this transform right
    after ``LoadImageFromFile`` and add ``key`` to ``PackSegInputs``' ``meta_keys`` so that the
    image reaches the model in each data sample's meta information.

    Required keys: ``img``. Added keys: ``key``.

    Args:
        key (str): Where to keep the image. Defaults to ``'ori_img'``.
    """

    def __init__(self, key: str = 'ori_img') -> None:
        if key == 'img':
            raise ValueError("KeepOriginalImage.key must not be 'img': the resize would "
                             'overwrite it')
        self.key = key

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError('KeepOriginalImage needs results["img"]: put it after '
                           'LoadImageFromFile')
        results[self.key] = results['img'].copy()
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(key={self.key!r})'
