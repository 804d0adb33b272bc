# SVDP with its teacher's views as the reference segmentation code makes them: each scale
# resized from the original image, prompted, run through slide inference; the uncertainty map,
# the label and the student's loss at the original size. The data pipeline must keep the
# original image (original_views_pipeline in _base_/datasets/acdc.py).
_base_ = ['./svdp.py']
tta_method = dict(view_source='original')
