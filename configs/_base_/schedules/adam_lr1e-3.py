# RoTTA's optimizer on every data set of its references: Adam, lr 1e-3, betas (0.9, 0.999), no
# weight decay, one step per update (BIT-DA/RoTTA configs/adapter/rotta.yaml; mariodoebler/
# test-time-adaptation cfgs/{cifar10_c,cifar100_c,imagenet_c}/rotta.yaml, batch size 64 on
# ImageNet-C).
adapt_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0))
