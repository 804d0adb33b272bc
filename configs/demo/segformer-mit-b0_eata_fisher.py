# The embedded benchmark with EATA and its Fisher penalty, estimated on 50
# images of the clean validation split of the generated source domain.
_base_ = ['./segformer-mit-b0_eata.py']
fisher_data = dict(
    num_images=50,
    dataloader=dict(
        batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CityscapesDataset', data_root='data/synthetic_acdc',
                     data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                     pipeline=[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')])))
model = dict(tta_method=dict(fisher_data=fisher_data))
