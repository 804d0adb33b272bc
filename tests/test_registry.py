"""Every public name registers where its users look it up, under the mmseg and mmpretrain scopes."""
import pytest
from mmengine.registry import LOOPS, DefaultScope

from stag_seg.registry import TTA_METHODS, TTA_REGULARIZERS, build

OPTIM = dict(optimizer=dict(type='SGD', lr=0.1))


def test_every_method_and_regularizer_builds_from_a_config():
    for name, cls in TTA_METHODS.module_dict.items():
        cfg = dict(type=name)
        if cls.needs_grad:
            cfg.update(optim_wrapper=OPTIM,
                       regularizers=[dict(type=r) for r in TTA_REGULARIZERS.module_dict])
        method = build(TTA_METHODS, cfg, 'tta_method')
        assert type(method).__name__ == name
    assert {'Source', 'Norm', 'Tent'} <= set(TTA_METHODS.module_dict)
    assert {'STAG'} <= set(TTA_REGULARIZERS.module_dict)


@pytest.mark.parametrize('scope', ['mmseg', 'mmpretrain'])
def test_the_loop_and_hooks_build_from_every_scope(scope):
    from mmengine.registry import HOOKS
    with DefaultScope.overwrite_default_scope(scope):
        assert LOOPS.get('ContinualTestLoop').__name__ == 'ContinualTestLoop'
        for name in ('TTAHook', 'STAGHook'):
            hook = HOOKS.build(dict(type=name, method=dict(type='Tent', optim_wrapper=OPTIM)))
            assert type(hook).__name__ == name


def test_every_shipped_config_loads_and_names_registered_types():
    import glob
    import os.path as osp

    from conftest import ROOT
    from mmengine.config import Config
    from mmengine.registry import MODELS
    # configs/suites/ holds suites of runs, not run configs (tests/test_digits_c.py loads them)
    configs = [c for c in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
               if '_base_' not in c and osp.sep + 'suites' + osp.sep not in c]
    assert len(configs) >= 15
    for path in configs:
        cfg = Config.fromfile(path)
        with MODELS.switch_scope_and_registry(cfg.default_scope) as registry:
            assert registry.get(cfg.model.type) is not None, path
        if cfg.model.get('tta_method'):
            build_method_cfg = dict(cfg.model.tta_method)
            from stag_seg.methods import build_method
            build_method(build_method_cfg, cfg.model.get('adapt_optim_wrapper'))


def test_the_acdc_b5_model_has_the_layout_of_mmseg_own_b5_checkpoint():
    """The configs must load MMSeg's segformer_mit-b5 Cityscapes checkpoint tensor for tensor."""
    import os.path as osp

    from conftest import ROOT
    from mmengine.config import Config
    from mmseg.registry import MODELS
    ours = Config.fromfile(osp.join(ROOT, 'configs', 'acdc', 'segformer-b5-mmseg_tent_stag.py')
                           ).model
    import mmseg
    stock = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', 'segformer',
                                     'segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py')).model
    stock.backbone.init_cfg = None  # nothing to download
    with DefaultScope.overwrite_default_scope('mmseg'):
        a = {k: tuple(v.shape) for k, v in MODELS.build(ours).state_dict().items()}
        b = {k: tuple(v.shape) for k, v in MODELS.build(stock).state_dict().items()}
    assert a == b


def test_mmseg_modules_register_in_mmseg_registries():
    from mmseg.registry import DATASETS, MODELS, TRANSFORMS
    assert MODELS.get('TTAEncoderDecoder').__module__ == 'stag_seg.models.tta_encoder_decoder'
    assert DATASETS.get('ACDCDataset').__module__ == 'stag_seg.datasets.acdc'
    import stag_seg.datasets.generators  # noqa: F401  (not loaded by import stag_seg)
    assert TRANSFORMS.get('ApplyWeather').__module__ == 'stag_seg.datasets.generators.weather'


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError,
                       match=r"tta_method.type must be one of \[.*'Tent'.*\], got 'Tnet'"):
        build(TTA_METHODS, dict(type='Tnet'), 'tta_method')
    with pytest.raises(TypeError, match="must be a dict with a 'type'"):
        build(TTA_REGULARIZERS, 'STAG', 'tta_method.regularizers[]')
