# ViT-B/16 (LayerNorm) at 224 x 224 for ImageNet-1k as a TTAImageClassifier: the model of timm's
# vit_base_patch16_224 (SAR's and DeYO's "VitBase"). The checkpoint the ImageNet-C configs are
# written for is timm's vit_base_patch16_224.augreg_in21k_ft_in1k (ImageNet-21k pre-training,
# ImageNet-1k fine-tuning; Steiner et al., "How to train your ViT?"): the default weights of
# vit_base_patch16_224 in timm 0.6.12, which SAR pins, released as
#   https://storage.googleapis.com/vit_models/augreg/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_224.npz
# and as a PyTorch state dict in the Hugging Face repository
# timm/vit_base_patch16_224.augreg_in21k_ft_in1k. timm >= 0.9 (DeYO pins 0.9.7) resolves
# vit_base_patch16_224 to augreg2_in21k_ft_in1k instead: other weights with the same architecture
# and normalisation, which this config loads as well.
#
# Normalisation: these checkpoints expect mean = std = (0.5, 0.5, 0.5) on [0, 1] RGB (timm's
# default config of every augreg ViT), i.e. 127.5 / 127.5 in 0-255 units, as below. The SAR and
# DeYO code normalise every model with the ImageNet mean/std (0.485, 0.456, 0.406) /
# (0.229, 0.224, 0.225), this ViT included; numbers made that way are not comparable with this
# config's.
#
# A timm checkpoint does not load as it is: the keys differ (blocks.i.norm1 ->
# backbone.layers.i.ln1, mlp.fc1 -> ffn.layers.0.0, mlp.fc2 -> ffn.layers.1, patch_embed.proj ->
# patch_embed.projection, norm -> backbone.ln1, head -> head.layers.head). mmpretrain ships no
# converter for timm ViTs (its deit3_to_mmpretrain.py does these renames but passes unknown keys
# through); convert with
#   python tools/convert_timm_classifier.py pytorch_model.bin CHECKPOINT --arch vit
# (a .safetensors file needs the safetensors package; the JAX .npz needs timm to load it once).
_base_ = ['mmpretrain::_base_/models/vit-base-p16.py']
model = dict(
    type='TTAImageClassifier',
    tta_method=dict(type='Source'),
    data_preprocessor=dict(
        type='ClsDataPreprocessor', num_classes=1000, mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5], to_rgb=True),
    # timm's ViT: LayerNorm eps 1e-6 (mmpretrain's default too), qkv bias, final norm, the
    # class token into one linear head (the augreg in1k weights have no pre-logits layer)
    backbone=dict(img_size=224, patch_size=16, drop_rate=0.0, out_type='cls_token',
                  final_norm=True),
    head=dict(hidden_dim=None))
