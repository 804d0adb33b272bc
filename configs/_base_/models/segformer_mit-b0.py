# SegFormer MiT-B0 (MMSeg's stock model) as a TTAEncoderDecoder: Source until a config sets
# model.tta_method (from a _base_/tta file) and model.adapt_optim_wrapper (from a schedule).
# The stock SyncBN becomes BN when no process group exists (stag_seg.compat).
_base_ = ['mmseg::_base_/models/segformer_mit-b0.py']
model = dict(type='TTAEncoderDecoder', tta_method=dict(type='Source'))
