"""What a person reads or types for a unit: layers from 1, units from 0, one converter."""

from __future__ import annotations

import pytest
from charlstm_core.errors import ConfigError
from charlstm_core.insight.units import parse_unit, unit_label, unit_name


def test_labels_count_layers_from_one():
    assert unit_label(0, 37) == "1:37" and unit_label(1, 0) == "2:0"
    assert unit_name(0, 44) == "layer 1 unit 44"


@pytest.mark.parametrize("layer, unit", [(0, 0), (0, 127), (2, 5)])
def test_parse_is_the_inverse_of_the_label(layer, unit):
    assert parse_unit(unit_label(layer, unit), 3, 128) == (layer, unit)


def test_layer_zero_is_a_clear_error_naming_the_valid_range():
    with pytest.raises(ConfigError) as e:
        parse_unit("0:12", 2, 128)
    text = str(e.value)
    assert "Layers count from 1" in text and "layers 1 to 2, units 0 to 127" in text
    assert "Did you mean 1:12?" in text


@pytest.mark.parametrize("spec", ["3:0", "1:128", "-1:4", "1:-1"])
def test_outside_the_model_says_the_ranges(spec):
    with pytest.raises(ConfigError, match="outside the model, which has layers 1 to 2"):
        parse_unit(spec, 2, 128)


@pytest.mark.parametrize("spec", ["x", "1", "1:2:3", "a:b", ""])
def test_malformed_says_the_form(spec):
    with pytest.raises(ConfigError, match="LAYER:UNIT such as 1:37"):
        parse_unit(spec, 1, 16)
