"""Dotted keys into nested configs, as --cfg-options names them (stag_seg.dotted)."""
import pytest
from mmengine.config import Config

from stag_seg.datasets.domains import domain_dataloader
from stag_seg.dotted import get_key, has_key, set_key


def test_a_dotted_key_reaches_into_lists_by_index():
    cfg = dict(type='StreamDataset', datasets=[dict(type='CIFARCDataset', corruption='x')])
    set_key(cfg, 'datasets.0.corruption', 'fog')
    assert cfg['datasets'][0]['corruption'] == 'fog'
    assert get_key(cfg, 'datasets.0.corruption') == 'fog'
    assert has_key(cfg, 'datasets.0') and not has_key(cfg, 'datasets.1')
    set_key(cfg, 'order', 'mixed', create=True)
    assert cfg['order'] == 'mixed'


def test_a_missing_part_is_an_error_naming_the_option_and_where():
    cfg = dict(datasets=[dict(corruption='x')], dataset='plain')
    with pytest.raises(KeyError, match=r"seed_keys: 'datasets.1.corruption' has no item '1' at "
                                       r"'datasets.1' \(a list of 1\)"):
        set_key(cfg, 'datasets.1.corruption', 'fog', what='seed_keys')
    with pytest.raises(KeyError, match=r"the config has no 'order' \(in 'order'\)"):
        set_key(cfg, 'order', 'mixed')  # every part must exist unless create=True
    with pytest.raises(KeyError, match=r"goes through 'dataset.corruption', which is neither"):
        get_key(cfg, 'dataset.corruption.x')


def test_mmengine_configs_are_walked_like_dicts():
    cfg = Config(dict(model=dict(tta_method=dict(regularizers=[dict(weight=0.5)]))))
    assert get_key(cfg, 'model.tta_method.regularizers.0.weight') == 0.5
    set_key(cfg, 'model.tta_method.regularizers.0.weight', 1.0)
    assert cfg.model.tta_method.regularizers[0].weight == 1.0


def test_the_domain_key_of_a_loop_uses_the_same_walk():
    template = dict(batch_size=1, dataset=dict(type='StreamDataset', datasets=[
        dict(type='CIFARCDataset', corruption='x')]))
    name, cfg = domain_dataloader('fog', template, 'datasets.0.corruption')
    assert name == 'fog' and cfg['dataset']['datasets'][0]['corruption'] == 'fog'
    with pytest.raises(KeyError, match="test_cfg.domain_key 'datasets.1.corruption'"):
        domain_dataloader('fog', template, 'datasets.1.corruption')
