# SAR (Niu et al., ICLR 2023): reliable entropy (H < 0.4 ln C), SAM with rho 0.05, reset to the
# source when the moving average of the loss falls below 0.2.
tta_method = dict(
    _delete_=True, type='SAR', e0=None, rho=0.05, reset_threshold=0.2, regularizers=[])
