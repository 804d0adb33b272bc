# The ImageNet-C adaptation optimizer of Tent, EATA, SAR and DeYO for ResNet-50 (BN and GN):
# SGD, momentum 0.9, lr 2.5e-4 at batch size 64 (EATA/SAR/DeYO main.py, lr = 0.00025 for
# batch sizes >= 32; mariodoebler/test-time-adaptation cfgs/imagenet_c/{tent,eata,sar,deyo}.yaml).
# Scale lr with the batch size. The EATA / SAR / DeYO code uses plain momentum; Tent's and
# CoTTA's code and mariodoebler's use Nesterov momentum
# (--cfg-options model.adapt_optim_wrapper.optimizer.nesterov=True to match them).
adapt_optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=2.5e-4, momentum=0.9))
