# RMT (Döbler et al., CVPR 2023) as mariodoebler/test-time-adaptation runs it (conf.py and
# cfgs/*/rmt.yaml): teacher EMA 0.999; symmetric cross entropy to the teacher on the test batch
# and its strong view; the contrastive term to the nearest source prototype (temperature 0.1,
# projector width 128, prototypes from more than 100000 source images, or all); source replay
# with weight 1 and a warm-up on 50000 source images. A leaf config gives the labelled source
# images as model.tta_method.source_data (the prototypes need them in every variant); the
# source-free variant sets lambda_ce_src=0 and warmup_samples=0 (that repository's
# scripts/run.sh).
tta_method = dict(
    _delete_=True, type='RMT', teacher_momentum=0.999, temperature=0.1, projection_dim=128,
    lambda_ce_src=1.0, lambda_ce_trg=1.0, lambda_cont=1.0, warmup_samples=50000,
    prototype_samples=100000, regularizers=[])
