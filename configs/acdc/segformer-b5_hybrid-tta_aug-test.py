# Cityscapes->ACDC with Hybrid-TTA's --aug-test variant (scripts/ours.py --aug-test; not the
# README's command): the label and the prediction from the teacher's 14 views (7 scales x flip,
# each the original image resized to exactly (int(960 r), int(544 r)), slide inference), gated by
# the anchor's plain-view confidence (0.69); everything else as segformer-b5_hybrid-tta.py. The
# pipeline keeps the original image for the views.
_base_ = ['./segformer-b5_hybrid-tta.py']
model = dict(tta_method=dict(aug_test=True))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='KeepOriginalImage'),
    dict(type='Resize', scale=(960, 544), keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs',
         meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                    'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label', 'ori_img')),
]))
