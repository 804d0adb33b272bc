# Runtime shared by every stag_seg config (MMSeg scope; stag_seg registers on import).
default_scope = 'mmseg'
custom_imports = dict(imports=['stag_seg'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # a rank that stops answering ends the job after `timeout` seconds instead of hanging it
    dist_cfg=dict(backend='nccl', timeout=1800),
)
randomness = dict(seed=0)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
