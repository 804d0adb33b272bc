"""STAG: closed-form entropy gradients aligned with anchors from the classifier's weights."""
from .anchors import Anchors, compute_anchors, prototype_logits
from .entropy import (GRADIENTS, cross_entropy_grad, entropy, entropy_and_grad, entropy_grad,
                      logit_grad)
from .loss import FORMS, SPACES, WEIGHTINGS, gram_matrices, stag_cosine, stag_loss
from .stag import STAG

__all__ = [
    'Anchors', 'FORMS', 'GRADIENTS', 'SPACES', 'STAG', 'WEIGHTINGS', 'compute_anchors',
    'cross_entropy_grad', 'entropy', 'entropy_and_grad', 'entropy_grad', 'gram_matrices',
    'logit_grad', 'prototype_logits', 'stag_cosine', 'stag_loss',
]
