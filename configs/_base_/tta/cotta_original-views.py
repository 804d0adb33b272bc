# CoTTA with its teacher's views as the reference segmentation code makes them: each scale
# resized from the original image, each view through the model's slide inference, probabilities
# averaged at the original size, where the label and the student's loss live too. The data
# pipeline must keep the original image (original_views_pipeline in _base_/datasets/acdc.py).
_base_ = ['./cotta.py']
tta_method = dict(view_source='original')
