# RMT on Digits-C: ./rmt.py with the clean training digits as its labelled source images.
_base_ = ['./rmt.py']
tta_method = dict(
    source_data=dict(
        dataloader=dict(
            batch_size=64, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
            dataset=dict(type='NumpyClsDataset', data_root='data/digits/train',
                         pipeline=[dict(type='PackInputs')]))))
