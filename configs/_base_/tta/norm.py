# Norm: BatchNorm with test-batch statistics ("BN adapt"); nothing is trained.
tta_method = dict(_delete_=True, type='Norm')
