"""MM model wrappers and the classifier tap."""
from .tap import ClassifierTap, TapOutput, tap_decode_head
from .tta_encoder_decoder import TTAEncoderDecoder

__all__ = ['ClassifierTap', 'TapOutput', 'TTAEncoderDecoder', 'tap_decode_head']
