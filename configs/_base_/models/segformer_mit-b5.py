# SegFormer MiT-B5 with MMSeg's stock SegformerHead (256 channels): the layout of MMSeg's own
# segformer_mit-b5_8xb1-160k_cityscapes-1024x1024 checkpoint.
_base_ = ['./segformer_mit-b0.py']
model = dict(
    backbone=dict(embed_dims=64, num_layers=[3, 6, 40, 3]),
    decode_head=dict(in_channels=[64, 128, 320, 512]))
