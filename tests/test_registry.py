"""Every public name registers where its users look it up, under the mmseg and mmpretrain scopes."""
import pytest
from mmengine.registry import LOOPS, DefaultScope

from stag_seg.registry import TTA_METHODS, TTA_REGULARIZERS, build

OPTIM = dict(optimizer=dict(type='SGD', lr=0.1))


@pytest.mark.parametrize('scope', ['mmseg', 'mmpretrain'])
def test_every_method_and_regularizer_builds_from_a_config(scope):
    with DefaultScope.overwrite_default_scope(scope):
        for name, cls in TTA_METHODS.module_dict.items():
            cfg = dict(type=name)
            if cls.needs_grad:
                cfg.update(optim_wrapper=OPTIM, regularizers=[
                    dict(type=r) for r in TTA_REGULARIZERS.module_dict])
            method = build(TTA_METHODS, cfg, 'tta_method')
            assert type(method).__name__ == name
        assert {'Source', 'Norm', 'Tent'} <= set(TTA_METHODS.module_dict)
        assert {'STAG'} <= set(TTA_REGULARIZERS.module_dict)


@pytest.mark.parametrize('scope', ['mmseg', 'mmpretrain'])
def test_the_loop_is_visible_from_every_scope(scope):
    with DefaultScope.overwrite_default_scope(scope):
        assert LOOPS.get('ContinualTestLoop').__name__ == 'ContinualTestLoop'


def test_mmseg_modules_register_in_mmseg_registries():
    from mmseg.registry import DATASETS, MODELS, TRANSFORMS
    assert MODELS.get('TTAEncoderDecoder').__module__ == 'stag_seg.models.tta_encoder_decoder'
    assert DATASETS.get('ACDCDataset').__module__ == 'stag_seg.datasets.acdc'
    assert TRANSFORMS.get('ApplyWeather').__module__ == 'stag_seg.datasets.weather'


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match=r"tta_method.type must be one of \[.*'Tent'.*\], got 'Tnet'"):
        build(TTA_METHODS, dict(type='Tnet'), 'tta_method')
    with pytest.raises(TypeError, match="must be a dict with a 'type'"):
        build(TTA_REGULARIZERS, 'STAG', 'tta_method.regularizers[]')
