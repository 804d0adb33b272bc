# Digits-C with EATA and its Fisher penalty (alpha 2000), estimated on 500 images of the clean
# training split.
_base_ = ['./small-convnet_eata.py']
fisher_data = dict(
    num_images=500,
    dataloader=dict(
        batch_size=64, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='NumpyClsDataset', data_root='data/digits/train',
                     pipeline=[dict(type='PackInputs')])))
model = dict(tta_method=dict(fisher_data=fisher_data))
