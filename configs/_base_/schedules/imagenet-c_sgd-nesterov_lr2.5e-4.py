# The ImageNet-C optimizer of mariodoebler/test-time-adaptation's RDumb and ROID
# (classification/cfgs/imagenet_c/{rdumb,roid}.yaml: SGD, lr 2.5e-4, momentum 0.9, wd 0, batch
# size 64; OPTIM.NESTEROV is True by default, conf.py). That repository runs ViT-B/16 with the
# same yaml (its scripts/run.sh swaps MODEL.ARCH only), so the ViT configs keep this rate.
adapt_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9, nesterov=True, weight_decay=0.0))
