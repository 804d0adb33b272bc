# Entry point: Cityscapes->ACDC continual adaptation with Tent (see configs/acdc/).
_base_ = ['./acdc/segformer-b5_tent.py']
