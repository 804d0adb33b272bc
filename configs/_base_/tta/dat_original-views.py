# DAT with its teacher's and anchor's views as the reference segmentation code makes them: each
# scale resized from the original image, each view through the model's slide inference,
# probabilities at the original size, where u, the label and the student's loss live too. The
# data pipeline must keep the original image (original_views_pipeline in
# _base_/datasets/acdc.py).
_base_ = ['./dat.py']
tta_method = dict(view_source='original')
