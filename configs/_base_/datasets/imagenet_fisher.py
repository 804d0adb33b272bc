# EATA's source images for the Fisher penalty: 2000 clean ImageNet validation images
# (EATA / SAR / DeYO main.py: --fisher_size 2000, from the val set, resized to 256 and
# centre-cropped to 224, as ImageNet-C was made), in a seeded random order so that the 2000
# cover all classes. Layout: data/imagenet/val/<wnid>/*.JPEG (the class-folder layout the
# reference code reads with torchvision's ImageFolder). Another set: set
# model.tta_method.fisher_data.dataloader.dataset.data_root / .num_images.
fisher_data = dict(
    num_images=2000,
    dataloader=dict(
        batch_size=64, num_workers=4,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
        dataset=dict(
            type='CustomDataset', data_root='data/imagenet', data_prefix='val',
            pipeline=[
                dict(type='LoadImageFromFile', imdecode_backend='pillow'),
                dict(type='ResizeEdge', scale=256, edge='short'),
                dict(type='CenterCrop', crop_size=224),
                dict(type='PackInputs'),
            ])))
