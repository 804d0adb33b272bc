# Entry point: Cityscapes->ACDC continual adaptation with Tent + STAG in its default reading
# (the weighting reading, the second pre-registered study's choice, projects/stag_study/README.md;
# the logit reading as a loss, lambda 4, is configs/acdc/segformer-b5_tent_stag_logit.py).
# Checkpoint: NVlabs/CoTTA SegFormer-B5, converted by tools/convert_nvlabs_segformer.py.
#   python tools/test_tta.py configs/acdc_segformer_stag.py CHECKPOINT
#   (--cfg-options test_cfg.rounds=3 for the three-round protocol of later papers)
_base_ = ['./acdc/segformer-b5_tent_stag.py']
