# DeYO as its classification code runs on ViT-B/16: blocks 9-11 and the final norm are not
# adapted (Jhyun17/DeYO, deyo.py collect_params skips 'blocks.9', 'blocks.10', 'blocks.11' and
# 'norm.', as SAR's code does).
_base_ = ['./deyo.py']
tta_method = dict(frozen_modules=[
    'backbone.layers.9', 'backbone.layers.10', 'backbone.layers.11', 'backbone.ln1'
])
