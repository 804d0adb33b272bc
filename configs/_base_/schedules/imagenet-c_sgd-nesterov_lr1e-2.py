# RMT's ImageNet-C optimizer (mariodoebler/test-time-adaptation cfgs/imagenet_c/rmt.yaml: SGD,
# lr 0.01, momentum 0.9, wd 0, batch size 64; OPTIM.NESTEROV True by default, conf.py), run on
# every architecture there. The projector trains at the same rate (a second parameter group).
adapt_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.0))
