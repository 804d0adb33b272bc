# Entry point: Cityscapes->ACDC continual adaptation with Tent (see configs/acdc/).
# Checkpoint: NVlabs/CoTTA SegFormer-B5, converted by tools/convert_nvlabs_segformer.py.
_base_ = ['./acdc/segformer-b5_tent.py']
