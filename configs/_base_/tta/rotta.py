# RoTTA (Yuan et al., CVPR 2023) with the constants of its official code, BIT-DA/RoTTA
# (core/configs/defaults.py ADAPTER.RoTTA: NU 0.001, MEMORY_SIZE 64, UPDATE_FREQUENCY 64,
# LAMBDA_T 1.0, LAMBDA_U 1.0, ALPHA 0.05), the same in mariodoebler/test-time-adaptation
# (conf.py _C.ROTTA), whose port also trains LayerNorm and GroupNorm affine parameters
# (adapt_other_norms). Every BatchNorm becomes a robust one while the method is attached.
tta_method = dict(
    _delete_=True, type='RoTTA', memory_size=64, update_frequency=64, nu=0.001, alpha=0.05,
    lambda_t=1.0, lambda_u=1.0, adapt_other_norms=True, regularizers=[])
