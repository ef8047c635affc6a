"""The time-budget presets (``charlstm_core.presets``): each recipe is one the preset sweep measured
at that budget, with the validation and samples the sweep paid for; each description states budget
and recipe and sends the reader to the benchmarks for the figures, which it never states itself."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from charlstm_core import presets

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
    preset = presets.PRESETS[name].settings
    assert presets.PRESETS[name].budget == ("minutes", minutes)
    (budget,) = [b for b in bench.BUDGETS if b.minutes == minutes]
    chosen = {k: preset[k] for k in RECIPE_KEYS}
    defaults = presets.TEN_MINUTE_RECIPE  # what a budget's base leaves unsaid
    points = [{k: p.get(k, defaults[k]) for k in RECIPE_KEYS} for p in measured(budget)]
    assert chosen in points
    # the sweep validated and sampled as the preset does, so its steps paid for the same
    for key in ("val_fraction", "eval_every", "sample_every", "sample_length", "warmup_steps"):
        assert budget.train[key] == preset[key], key


def test_best_quality_is_its_own_recipe_and_the_settings_check_agrees_with_it():
    """The hour's recipe is not Balanced's (which over-fits a 1 MB text within the hour), and the
    app's settings check does not tell a user who picks it that the model will memorise a
    1 MB text: its dropout is what holds the bigger model back."""
    from charlstm_core.training.plan import param_parts, size_advice

    best, balanced = presets.PRESETS["Best quality"].settings, presets.PRESETS["Balanced"].settings
    assert {k: best[k] for k in RECIPE_KEYS} != {k: balanced[k] for k in RECIPE_KEYS}
    parts = param_parts(65, best["hidden_size"], best["num_layers"])
    train_chars = int(1_100_000 * (1 - best["val_fraction"]))  # tinyshakespeare's training part
    assert sum(parts.values()) > train_chars  # a model bigger than the text...
    advice = size_advice(parts, 65, train_chars, best["dropout"])
    assert "holds it back" in advice and "memorise the text rather" not in advice
    # ...which the same check calls memorising without the preset's dropout
    assert "memorise the text rather" in size_advice(parts, 65, train_chars, balanced["dropout"])


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_each_description_states_budget_and_recipe_and_no_measured_figure(name):
    """What a recipe measured lives in benchmarks/README.md, under the heading the description
    names; the description (the app's tooltip) never quotes a loss, a step count or a sweep."""
    preset = presets.PRESETS[name]
    text = preset.describe()
    unit, amount = preset.budget
    assert text.startswith(presets.budget_text(unit, amount) + ": ")
    assert presets.recipe_text(preset.settings) in text
    words = text.replace(presets.recipe_text(preset.settings), "")  # its learning rate: 0.008
    assert not re.search(r"\d\.\d{3}|validation loss|\d+ recipes|\d,\d{3} steps", words), text
    if name in TIMED:
        assert preset.measured and f"“{preset.measured}”" in text and presets.BENCHMARKS in text
        headings = re.findall(r"^#+ (.+)$", (ROOT / presets.BENCHMARKS).read_text(), re.M)
        assert preset.measured in headings
    else:
        assert preset.gpu and "Not yet measured on a GPU." in text


def test_the_benchmarks_hold_the_figures_of_each_timed_preset():
    """The section the presets name gives each one's recipe with its validation losses."""
    page = (ROOT / presets.BENCHMARKS).read_text(encoding="utf-8")
    section = page.split(f"## {presets.MEASURED}\n", 1)[1].split("\n## ", 1)[0]
    for name in TIMED:
        (row,) = [line for line in section.splitlines() if line.startswith(f"| {name} |")]
        assert len(re.findall(r"[0-9]\.[0-9]{3}", row)) >= 2, row  # one per text at least


def test_every_preset_names_the_same_monitoring_settings():
    """Switching presets must not carry one preset's validation part into another's."""
    keys = {"val_fraction", "eval_every", "sample_every", "sample_length"}
    for name, preset in presets.PRESETS.items():
        assert keys <= set(preset.settings), name


def test_two_runs_of_the_sweep_sharing_a_folder_keep_each_others_rows(bench, tmp_path):
    """One run per text may share OUT: each row is added to the file as it is on disk."""
    path = tmp_path / "results.json"
    a, b = bench.Results(path), bench.Results(path)  # both read the empty file
    a.add(dict(stage="sweep", text="python", label="x"))
    b.add(dict(stage="sweep", text="shakespeare", label="x"))
    a.add(dict(stage="calibration", text="python", label="y"))
    assert [r["text"] for r in bench.Results(path).rows] == ["python", "shakespeare", "python"]
    assert len(b.find(label="x")) == 2 and not list(tmp_path.glob("*.tmp"))


def test_a_point_timed_before_trains_its_earlier_steps_and_is_not_timed_again(
    bench, tmp_path, monkeypatch
):
    """So that a point an interrupted run left part-way continues from its checkpoint (whose
    settings include its steps), and the other text's --steps-of finds it before it ends."""
    results = bench.Results(tmp_path / "results.json")
    budget = bench.BUDGETS[-1]
    model, train = bench.configs(budget)
    first, second = (
        bench.SweepPoint(index=i, changes=c, label=bench.label_of(c))
        for i, c in enumerate(budget.points[:2])
    )
    results.add(
        dict(stage="calibration", minutes=60.0, text="shakespeare", label=first.label,
             steps=1234, seconds_per_step=0.5, reserve_s=3.0)
    )  # fmt: skip
    timed = []

    def fake_calibrate(points, *args, **kwargs):
        timed.extend(p.label for p in points)
        return [bench.Calibration(bench.dataclasses.replace(p, steps=99), 0.7, 1.0) for p in points]

    monkeypatch.setattr(bench, "calibrate", fake_calibrate)
    args = type("Args", (), {"lock": None})()
    cals = bench.calibrated(args, "shakespeare", 60.0, model, train, None, [second, first], results)
    assert timed == [second.label]
    assert [(c.point.label, c.steps) for c in cals] == [(first.label, 1234), (second.label, 99)]
    row = results.find(stage="calibration", label=second.label)[0]
    assert (row["steps"], row["seconds_per_step"], row["text"]) == (99, 0.7, "shakespeare")
    # the other text is given the same steps, the first point's before it has finished
    other = bench.steps_of("shakespeare", 60.0, [first, second], results)
    assert [c.steps for c in other] == [1234, 99]
