# DAT on MiT-B0: 193 tensors to rank (q and kv split), so fraction 0.0055 adds one tensor per
# ranking, as the reference's 0.001 does on SegFormer-B5's 1065 (int(193 * 0.001) = 0 would
# never update).
_base_ = ['./dat.py']
tta_method = dict(fraction=0.0055)
