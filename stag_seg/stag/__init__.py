"""STAG: closed-form entropy gradients aligned with anchors from the classifier's weights."""
from .anchors import Anchors, compute_anchors, prototype_logits
from .entropy import entropy, entropy_and_grad, entropy_grad
from .loss import FORMS, SPACES, gram_matrices, stag_cosine, stag_loss
from .reference import stag_loss_autograd
from .stag import STAG

__all__ = [
    'Anchors', 'FORMS', 'SPACES', 'STAG', 'compute_anchors', 'entropy', 'entropy_and_grad',
    'entropy_grad', 'gram_matrices', 'prototype_logits', 'stag_cosine', 'stag_loss',
    'stag_loss_autograd',
]
