# SegFormer MiT-B5 with the NVlabs head (NVSegFormerHead, 768 channels): the layout of the
# NVlabs/CoTTA segformer.b5.1024x1024.city.160k.pth after tools/convert_nvlabs_segformer.py.
# The backbone is MMSeg's MiT with NVlabs' LayerNorm eps (1e-5 in the 4 patch-embedding and 49
# spatial-reduction norms; NVMixVisionTransformer).
_base_ = ['./segformer_mit-b5.py']
model = dict(
    backbone=dict(type='NVMixVisionTransformer', nv_eps=1e-5),
    decode_head=dict(
        _delete_=True,
        type='NVSegFormerHead',
        in_channels=[64, 128, 320, 512],
        in_index=[0, 1, 2, 3],
        channels=768,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
