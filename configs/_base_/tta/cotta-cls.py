# CoTTA as its public classification code runs on ImageNet-C (ResNet-50), every number from
# https://github.com/qinenergy/cotta:
# - imagenet/cotta.py (fixed in the code): EMA teacher alpha 0.999; the augmented average for the
#   whole batch when the batch mean of the source model's max probability is below 0.1; 32
#   random views (get_tta_transforms, see stag_seg/methods/augment.py) whose logits are averaged;
#   the symmetric soft cross entropy (softmax_entropy); restore probability 0.001; every
#   parameter trained; BatchNorm with test-batch statistics in student, teacher and anchor
#   (configure_model, before the copies are made).
# - imagenet/cfgs/10orders/cotta/cotta*.yaml with setup_optimizer in imagenet/imagenetc.py: SGD,
#   lr 0.01, momentum 0.9, Nesterov, no weight decay, one step per batch, batch size 64 (set
#   batch_size=64 in the test dataloader; the optimizer is the method's own, so a leaf's
#   adapt_optim_wrapper does not replace it).
# The CIFAR code (cifar/cotta.py, cifar/cfgs/cifar10*/cotta.yaml) differs: label='soft'
# (one-sided), confidence 0.92 (CIFAR-10) or 0.72 (CIFAR-100), restore 0.01, Adam lr 1e-3,
# batch size 200. configs/_base_/tta/cotta.py keeps the segmentation reading.
tta_method = dict(
    _delete_=True, type='CoTTA', alpha=0.999, confidence=0.1, confidence_mode='batch_mean',
    label='symmetric', views='random', num_views=32, restore_prob=0.001, batch_stats=True,
    optim_wrapper=dict(
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.0)),
    regularizers=[])
