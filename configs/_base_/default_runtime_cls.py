# Runtime of the classification configs: default_runtime.py in the mmpretrain scope, with
# mmpretrain's visualizer (the scalars of the stream go to the same backends).
_base_ = ['./default_runtime.py']
default_scope = 'mmpretrain'
visualizer = dict(
    _delete_=True, type='UniversalVisualizer', vis_backends={{_base_.vis_backends}},
    name='visualizer')
