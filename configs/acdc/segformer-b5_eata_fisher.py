# Cityscapes->ACDC with EATA and its Fisher penalty, estimated on 500 Cityscapes
# validation images (data/cityscapes, resized like the stream).
_base_ = ['./segformer-b5_eata.py']
fisher_data = dict(
    num_images=500,
    dataloader=dict(
        batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CityscapesDataset', data_root='data/cityscapes',
                     data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='Resize', scale=(960, 540), keep_ratio=True),
                               dict(type='PackSegInputs')])))
model = dict(tta_method=dict(fisher_data=fisher_data))
