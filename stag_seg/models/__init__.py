"""MM model wrappers, the classifier tap, the adapter of each model family, the models of the
benchmarks (the CIFAR-C WRN-28-10 and ResNeXt-29, the small CNN, the NVlabs SegFormer head and
backbone), and SVDP's sparse prompt and Hybrid-TTA's adapters, mask token and reconstruction
neck."""
from .adapter import (Adapter, ClassifierAdapter, SegmentorAdapter, build_adapter,
                      classifier_logits, padding_mask, segmentor_logits)
from .cifar_nets import CifarResNeXt, CifarWideResNet
from .hybrid_mit import (HybridMixVisionTransformer, HybridTTABackbone, ParallelAdapter,
                         ReconstructionNeck)
from .nv_mit import NVMixVisionTransformer
from .nv_segformer_head import LevelProjection, NVSegFormerHead
from .prompt import SparsePrompt, SparsePromptedBackbone
from .small_convnet import SmallConvNet
from .tap import (NOT_PER_PIXEL_LINEAR, ClassifierTap, TapOutput, refusal_reason, tap_cls_head,
                  tap_decode_head)
from .tta_encoder_decoder import TTACascadeEncoderDecoder, TTAEncoderDecoder
from .tta_image_classifier import TTAImageClassifier

__all__ = [
    'NOT_PER_PIXEL_LINEAR', 'Adapter', 'CifarResNeXt', 'CifarWideResNet', 'ClassifierAdapter',
    'ClassifierTap',
    'HybridMixVisionTransformer', 'HybridTTABackbone', 'LevelProjection', 'ParallelAdapter',
    'ReconstructionNeck',
    'NVMixVisionTransformer', 'NVSegFormerHead', 'SegmentorAdapter', 'SmallConvNet',
    'SparsePrompt', 'SparsePromptedBackbone',
    'TTACascadeEncoderDecoder', 'TTAEncoderDecoder',
    'TTAImageClassifier', 'TapOutput', 'build_adapter', 'classifier_logits', 'padding_mask',
    'refusal_reason', 'segmentor_logits', 'tap_cls_head', 'tap_decode_head',
]
