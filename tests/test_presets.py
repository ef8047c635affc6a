"""The app's time-budget presets: each recipe is one the preset sweep measured at that budget, with
the validation and samples the sweep paid for, and each tip states budget, recipe and figure."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from charlstm_gui import presets

ROOT = Path(__file__).resolve().parents[1]
TIMED = {"Quick look": 1, "Balanced": 10, "Best quality": 60}
RECIPE_KEYS = ("hidden_size", "num_layers", "dropout", "seq_len", "batch_size", "lr")


@pytest.fixture(scope="module")
def bench():
    """benchmarks/sweep_presets.py as a module (it trains nothing when imported)."""
    spec = importlib.util.spec_from_file_location(
        "sweep_presets", ROOT / "benchmarks" / "sweep_presets.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_presets"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["sweep_presets"]


def measured(budget) -> list[dict]:
    """Each point of a budget's grid as full settings (the base and the point's changes)."""
    return [{**budget.model, **budget.train, **point} for point in budget.points]


@pytest.mark.parametrize(("name", "minutes"), list(TIMED.items()))
def test_each_timed_preset_is_a_point_its_sweep_measured_at_its_budget(bench, name, minutes):
    preset = presets.PRESETS[name]
    assert (preset["duration_unit"], preset["duration"]) == ("minutes", minutes)
    (budget,) = [b for b in bench.BUDGETS if b.minutes == minutes]
    chosen = {k: preset[k] for k in RECIPE_KEYS}
    defaults = presets.TEN_MINUTE_RECIPE  # what a budget's base leaves unsaid
    points = [{k: p.get(k, defaults[k]) for k in RECIPE_KEYS} for p in measured(budget)]
    assert chosen in points
    # the sweep validated and sampled as the preset does, so its steps paid for the same
    for key in ("val_fraction", "eval_every", "sample_every", "sample_length", "warmup_steps"):
        assert budget.train[key] == preset[key], key


def test_best_quality_is_the_ten_minute_recipe_for_an_hour_and_says_where_it_over_fits():
    best, balanced = presets.PRESETS["Best quality"], presets.PRESETS["Balanced"]
    assert (best["duration_unit"], best["duration"]) == ("minutes", 60)
    assert {k: best[k] for k in RECIPE_KEYS} == {k: balanced[k] for k in RECIPE_KEYS}
    tip = presets.PRESET_TIPS["Best quality"]
    assert "over-fitted" in tip and "tinyshakespeare" in tip and "Not yet measured" in tip


@pytest.mark.parametrize("name", list(TIMED))
def test_each_tip_states_the_budget_the_recipe_and_a_measured_figure(name):
    tip, preset = presets.PRESET_TIPS[name], presets.PRESETS[name]
    budget = {1: "One minute", 10: "Ten minutes", 60: "An hour"}[TIMED[name]]
    assert tip.startswith(budget + ": ")
    assert presets.recipe_text(preset) in tip
    assert re.search(r"validation loss [0-9]\.[0-9]{3}", tip), "a validation loss measured for it"


def test_every_preset_names_the_same_monitoring_settings():
    """Switching presets must not carry one preset's validation part into another's."""
    keys = {"val_fraction", "eval_every", "sample_every", "sample_length"}
    for name, preset in presets.PRESETS.items():
        assert keys <= set(preset), name
