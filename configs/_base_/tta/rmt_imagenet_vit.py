# RMT on ImageNet-C with ViT-B/16: ./rmt_imagenet.py, training the tensors named weight or bias as
# the reference does on torchvision's ViT, whose attention keeps its input projections under
# other names (in_proj_weight, in_proj_bias): they stay fixed (attention_inputs=False).
_base_ = ['./rmt_imagenet.py']
tta_method = dict(attention_inputs=False)
