# The "TENT" of the public CoTTA segmentation code: norm-layer parameters trained on hard
# self-pseudo-labels (cross entropy), the objective behind the published ACDC table's TENT rows.
tta_method = dict(_delete_=True, type='Tent', loss='pseudo_label', regularizers=[])
