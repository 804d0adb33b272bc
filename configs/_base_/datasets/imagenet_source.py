# RMT's labelled source images: the ImageNet training split, resized to 256 and centre-cropped to
# 224 without augmentation (the model's own preprocessing, as mariodoebler/
# test-time-adaptation's get_source_loader reads it), shuffled, at the test batch size 64.
# Layout: data/imagenet/train/<wnid>/*.JPEG.
source_data = dict(
    dataloader=dict(
        batch_size=64, num_workers=4,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
        dataset=dict(
            type='CustomDataset', data_root='data/imagenet', data_prefix='train',
            pipeline=[
                dict(type='LoadImageFromFile', imdecode_backend='pillow'),
                dict(type='ResizeEdge', scale=256, edge='short'),
                dict(type='CenterCrop', crop_size=224),
                dict(type='PackInputs'),
            ])))
