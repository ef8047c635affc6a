"""How a person names one unit: layers count from 1, units from 0, written ``LAYER:UNIT``.

Arrays and records keep 0-based indices (``Analysis.values`` is (L, N, H), ``UnitScore.layer``
is 0-based); what a person reads or types counts layers from 1, the layer nearest the text being
layer 1, as the app's spin box does. These functions are the one place that converts: the app,
``charlstm cells``, ``charlstm inspect --unit`` and the HTML page all use them.
"""

from __future__ import annotations

from ..errors import ConfigError


def unit_label(layer: int, unit: int) -> str:
    """``"1:37"`` for 0-based ``layer`` 0, unit 37: what ``cells`` prints and ``--unit`` takes."""
    return f"{layer + 1}:{unit}"


def unit_name(layer: int, unit: int) -> str:
    """``"layer 1 unit 37"`` for 0-based ``layer`` 0, unit 37: how a sentence names it."""
    return f"layer {layer + 1} unit {unit}"


def parse_unit(spec: str, num_layers: int, hidden_size: int) -> tuple[int, int]:
    """(0-based layer, unit) of ``spec`` ``"LAYER:UNIT"`` (layers from 1, units from 0), checked
    against a model of ``num_layers`` layers of ``hidden_size`` units.

    Raises ConfigError saying the valid ranges when ``spec`` is malformed or outside the model
    (layer 0 included: layers count from 1)."""
    ranges = f"layers 1 to {num_layers}, units 0 to {hidden_size - 1}"
    try:
        layer_s, unit_s = spec.split(":")
        layer, unit = int(layer_s), int(unit_s)
    except ValueError:
        raise ConfigError(
            f"A unit is given as LAYER:UNIT such as 1:37, not {spec!r}; this model has {ranges}."
        ) from None
    if layer == 0 and num_layers >= 1:
        hint = f" Did you mean 1:{unit}?" if 0 <= unit < hidden_size else ""
        raise ConfigError(
            f"Layers count from 1 (layer 1 is the one nearest the text), so {spec} names no "
            f"layer; this model has {ranges}.{hint}"
        )
    if not (1 <= layer <= num_layers and 0 <= unit < hidden_size):
        raise ConfigError(f"The unit {spec} is outside the model, which has {ranges}.")
    return layer - 1, unit
