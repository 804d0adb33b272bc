"""MM model wrappers, the classifier tap, the adapted test steps of each model family, and the
small CNN of the embedded classification benchmark."""
from .nv_mit import NVMixVisionTransformer
from .nv_segformer_head import LevelProjection, NVSegFormerHead
from .small_convnet import SmallConvNet
from .steps import (adapted_test_step, classifier_logits, classifier_test_step, family_logits,
                    model_family, segmentor_logits, segmentor_test_step, tap_cls_head, tap_model)
from .tap import ClassifierTap, TapOutput, tap_decode_head
from .tta_encoder_decoder import TTAEncoderDecoder
from .tta_image_classifier import TTAImageClassifier

__all__ = [
    'ClassifierTap', 'LevelProjection', 'NVMixVisionTransformer', 'NVSegFormerHead', 'SmallConvNet', 'TTAEncoderDecoder',
    'TTAImageClassifier', 'TapOutput', 'adapted_test_step', 'classifier_logits',
    'classifier_test_step', 'family_logits', 'model_family', 'segmentor_logits',
    'segmentor_test_step', 'tap_cls_head', 'tap_decode_head', 'tap_model',
]
