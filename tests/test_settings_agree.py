"""The command line, the app and the config fields agree on every setting.

Each setting is defined once, on its ``ModelConfig``/``TrainConfig`` field (training: ``charlstm
train`` and the settings form) or ``GenerationConfig`` field (generating: ``charlstm sample``, the
Generate tab, the engine's ``generate`` and the memorisation meter); the CLI's options and the
app's widgets are generated from it. These tests compare what each front end actually offers
(argparse actions, live Qt widgets, function signatures) with the fields, so a range, default or
help text changed in one place only fails here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

from charlstm_core.cli.options import default_text, range_text  # noqa: E402
from charlstm_core.cli.parser import SWEEP_DEFAULTS, build_parser  # noqa: E402
from charlstm_core.config import (  # noqa: E402
    DURATIONS,
    TEMPERATURE_EFFECT,
    GenerationConfig,
    ModelConfig,
    Setting,
    TrainConfig,
    settings,
)
from charlstm_core.errors import ConfigError  # noqa: E402

FIELDS = {k: v for cls in (ModelConfig, TrainConfig) for k, v in settings(cls).items()}
MODEL = set(settings(ModelConfig))
GEN = settings(GenerationConfig)


def _sub(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _config_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest in FIELDS}


# ---------------------------------------------------------------------------- the fields


def test_every_field_carries_a_complete_setting():
    for cls in (ModelConfig, TrainConfig, GenerationConfig):
        for f in dataclasses.fields(cls):
            s = f.metadata.get("setting")
            assert isinstance(s, Setting), f.name
            assert s.label and s.help.endswith("."), f.name
            if f.default is None and cls is not TrainConfig:  # a duration may be None
                assert s.none, f"{f.name}: say what None means"
            if s.kind is str:
                assert f.default in s.choices if s.choices else isinstance(f.default, str), f.name
            else:
                assert s.lo is not None and s.hi is not None and s.lo < s.hi, f.name
                if f.default not in (None, dataclasses.MISSING):
                    assert s.lo <= f.default <= s.hi, f.name


@pytest.mark.parametrize("name", [n for n, (s, _) in FIELDS.items() if s.kind is not str])
def test_validate_reads_each_range_from_its_field(name):
    s, default = FIELDS[name]
    cls = ModelConfig if name in MODEL else TrainConfig
    base = cls(vocab_size=10) if cls is ModelConfig else TrainConfig(steps=10)
    if name in DURATIONS:
        base = TrainConfig(**{name: s.kind(s.hi)})
    step = 1 if s.kind is int else abs(s.lo) * 1e-3 + 1e-9  # type: ignore[arg-type]
    for ok in (s.lo, s.hi):
        dataclasses.replace(base, **{name: s.kind(ok)}).validate()
    for bad in (s.lo - step, s.hi + max(step, abs(s.hi) * 1e-3)):  # type: ignore[operator]
        with pytest.raises(ConfigError, match=f"The {s.name} must be"):
            dataclasses.replace(base, **{name: s.kind(bad)}).validate()


@pytest.mark.parametrize("name", [n for n, (s, _) in GEN.items() if s.kind is not str])
def test_generation_validate_reads_each_range_from_its_field(name):
    s, _ = GEN[name]
    step = 1 if s.kind is int else abs(s.lo) * 1e-3 + 1e-9  # type: ignore[arg-type]
    for ok in (s.lo, s.hi):
        GenerationConfig().replace(**{name: s.kind(ok)}).validate()
    for bad in (s.lo - step, s.hi + max(step, abs(s.hi) * 1e-3)):  # type: ignore[operator]
        with pytest.raises(ConfigError, match=f"The {s.name} must be"):
            GenerationConfig().replace(**{name: s.kind(bad)}).validate()
    if s.none:
        GenerationConfig().replace(**{name: None}).validate()


def test_training_samples_share_the_generated_texts_ranges_and_meaning():
    """The training samples' temperature and length are read like the generated text's."""
    for train, gen in (("sample_temperature", "temperature"), ("sample_length", "length")):
        t, g = FIELDS[train][0], GEN[gen][0]
        assert (t.kind, t.lo, t.hi, t.unit) == (g.kind, g.lo, g.hi, g.unit), train
    assert TEMPERATURE_EFFECT in FIELDS["sample_temperature"][0].help
    assert TEMPERATURE_EFFECT in GEN["temperature"][0].help
    assert FIELDS["sample_temperature"][1] == GEN["temperature"][1]
    assert (FIELDS["seed"][0].lo, FIELDS["seed"][0].hi) == (GEN["seed"][0].lo, GEN["seed"][0].hi)


def test_the_engine_samples_with_the_generation_defaults_and_ranges():
    """``generate`` takes exactly the fields ``sampling()`` gives, with their defaults, and
    ``check_sampling`` refuses what the fields do."""
    import inspect

    from charlstm_core.sample import check_sampling, generate

    params = inspect.signature(generate).parameters
    kwargs = GenerationConfig().sampling()
    assert set(kwargs) == set(params) - {"model", "engine"}
    assert {k: params[k].default for k in kwargs} == kwargs
    ok = dict(temperature=0.0, top_k=0, top_p=1.0, length=1)
    check_sampling(**ok)
    for name in ok:
        s, _ = GEN[name]
        with pytest.raises(ConfigError, match=f"The {s.name} must be"):
            check_sampling(**{**ok, name: s.kind(s.hi + 1)})


def test_the_copy_index_takes_the_shortest_copy_from_its_field():
    import inspect

    from charlstm_core.insight import copies

    s, default = GEN["copies_min"]
    assert copies.MIN_N == s.lo
    for method in (copies.CopyIndex.build, copies.CopyIndex.from_text):
        assert inspect.signature(method).parameters["n"].default == default


@pytest.mark.parametrize("name", [n for n, (s, _) in FIELDS.items() if s.kind is str])
def test_validate_reads_each_choice_from_its_field(name):
    s, _ = FIELDS[name]
    base = ModelConfig(vocab_size=10) if name in MODEL else TrainConfig(steps=10)
    for ok in s.choices:
        dataclasses.replace(base, **{name: ok}).validate()
    with pytest.raises(ConfigError, match=f"The {s.name} must be one of {', '.join(s.choices)}"):
        dataclasses.replace(base, **{name: "nonsense"}).validate()


# ---------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("command, defaults", [("train", {}), ("sweep", SWEEP_DEFAULTS)])
def test_cli_options_are_the_fields(command, defaults):
    actions = _config_actions(_sub(command))
    with_flag = {n for n, (s, _) in FIELDS.items() if s.flag is not None}
    hand_written = set(DURATIONS)  # how long to train: the command's own group
    assert set(actions) - hand_written == with_flag
    for name in with_flag:
        s, default = FIELDS[name]
        a = actions[name]
        assert a.option_strings == [s.flag or "--" + name.replace("_", "-")]
        assert a.type is s.kind and a.default is None  # None: not given (a resume keeps its own)
        assert tuple(a.choices or ()) == s.choices
        shown = defaults.get(name, default)
        assert a.help.startswith(s.help) and a.help.endswith(f"(default: {shown})")
        if s.kind is not str:
            assert f"Range {range_text(s)}." in a.help


def test_cli_sample_options_are_the_generation_fields():
    actions = {a.dest: a for a in _sub("sample")._actions if a.dest in GEN}
    assert set(actions) == {n for n, (s, _) in GEN.items() if s.flag is not None}
    for name, a in actions.items():
        s, default = GEN[name]
        assert a.option_strings == [s.flag or "--" + name.replace("_", "-")]
        assert a.type is s.kind and a.default is None  # None: the field's default
        assert a.help.startswith(s.help)
        assert a.help.endswith(f"(default: {default_text(s, default)})")
        if s.kind is not str:
            assert f"Range {range_text(s)}." in a.help


def test_cli_sample_without_options_is_the_generation_defaults():
    from charlstm_core.cli.options import generation_from_args

    args = build_parser().parse_args(["sample", "m.npz"])
    assert generation_from_args(args) == GenerationConfig()
    args = build_parser().parse_args(
        ["sample", "m.npz", "--prime", "ab", "--top-p", "0.9", "--seed", "7", "--copies-min", "9"]
    )
    assert generation_from_args(args) == GenerationConfig(
        prime="ab", top_p=0.9, seed=7, copies_min=9
    )


def test_cli_sweep_default_is_a_valid_value():
    for name, value in SWEEP_DEFAULTS.items():
        FIELDS[name][0].check(value)


# ---------------------------------------------------------------------------- the settings form


@pytest.fixture
def form(qapp):
    from charlstm_gui.views.settings_form import SettingsForm

    f = SettingsForm()
    yield f
    f.deleteLater()


def test_form_widgets_are_the_fields(form):
    from PySide6.QtWidgets import QLabel

    from charlstm_gui.views.settings_form import GROUPS, WIDGETS, _label

    shown = [k for keys in GROUPS.values() for k in keys if k != "duration"]
    assert sorted(shown) == sorted(WIDGETS) and set(shown) <= set(FIELDS)
    assert set(form._spins) | set(form._combos) == {*shown, "duration"}
    for key in shown:
        s, _ = FIELDS[key]
        widget = form._spins.get(key) or form._combos[key]
        assert widget.toolTip() == s.help, key
        label = next(
            w for w in form.findChildren(QLabel) if w.buddy() is widget and w.text() == _label(key)
        )
        assert label.text().replace("&", "") == f"{s.label}:" and label.toolTip() == s.help
        if s.kind is str:
            assert {widget.itemData(i) for i in range(widget.count())} == set(s.choices), key
        else:
            # a QDoubleSpinBox rounds its range to the decimals it shows (lr: 1e-7 shows as 0)
            if s.kind is float:
                tolerance = 0.5 * 10.0 ** -widget.decimals()
                assert widget.minimum() == pytest.approx(s.lo, abs=tolerance), key
                assert widget.maximum() == pytest.approx(s.hi, abs=tolerance), key
            else:
                assert (widget.minimum(), widget.maximum()) == (s.lo, s.hi), key
            assert isinstance(widget.value(), s.kind), key


def test_form_duration_range_is_its_units_field(form):
    spin = form._spins["duration"]
    for unit in DURATIONS:
        s, _ = FIELDS[unit]
        form.unit.setCurrentText(unit)
        tolerance = 0.5 * 10.0 ** -spin.decimals()  # Qt rounds the range to the decimals shown
        assert spin.minimum() == pytest.approx(s.lo, abs=tolerance), unit
        assert spin.maximum() == pytest.approx(s.hi), unit


def test_form_starts_on_the_field_defaults_and_the_starting_preset(form):
    from charlstm_core.presets import PRESETS, START

    values = form.values()
    assert form.preset.currentText() == START
    start = PRESETS[START].settings
    for key, (_, default) in FIELDS.items():
        if key in values:
            assert values[key] == start.get(key, default), key
    unit, amount = PRESETS[START].budget
    assert (values["duration_unit"], values["duration"]) == (unit, amount)


def test_presets_name_only_form_settings_within_their_ranges(form):
    from charlstm_core.presets import PRESETS

    for name, preset in PRESETS.items():
        assert sum(u in preset.settings for u in DURATIONS) == 1, name  # one budget
        for key, value in preset.settings.items():
            FIELDS[key][0].check(value)
            if key not in DURATIONS:
                assert key in form._spins or key in form._combos, (name, key)
        preset.configs(vocab_size=65)  # and together they make valid configs


def test_form_holds_every_value_the_engine_accepts(form):
    """A model file the CLI trained (seed 2**63 - 1, the largest ranges) shows and rebuilds."""
    big = {k: s.hi for k, (s, _) in FIELDS.items() if s.kind is int and k in form._spins}
    train = TrainConfig(steps=10, **{k: v for k, v in big.items() if k not in MODEL})
    model = ModelConfig(vocab_size=10, **{k: v for k, v in big.items() if k in MODEL})
    form.set_from_configs(model, train)
    got_model, got_train = form.configs(10)
    assert got_train.seed == 2**63 - 1
    assert {k: getattr(got_train if k not in MODEL else got_model, k) for k in big} == big


# ---------------------------------------------------------------------------- the Generate tab


@pytest.fixture
def panel(qapp):
    from charlstm_gui.views.generate import GeneratePanel

    p = GeneratePanel()
    yield p
    p.deleteLater()


def test_generate_tab_widgets_are_the_generation_fields(panel):
    from charlstm_gui.views.generate import WIDGETS
    from charlstm_gui.widgets.setting_widgets import label_text

    assert set(WIDGETS) == set(GEN) and set(panel.labels) == set(GEN)
    for name, (s, _) in GEN.items():
        widget = panel.prime if name == "prime" else panel.spins[name]
        assert widget.toolTip() == s.help, name
        label = panel.labels[name]
        assert label.buddy() is widget and label.text() == label_text(s, WIDGETS[name]), name
        assert label.text().replace("&", "") == f"{s.label}:" and label.toolTip() == s.help
        if s.kind is float:  # a QDoubleSpinBox rounds its range to the decimals it shows
            tolerance = 0.5 * 10.0 ** -widget.decimals()
            assert widget.minimum() == pytest.approx(s.lo, abs=tolerance), name
            assert widget.maximum() == pytest.approx(s.hi, abs=tolerance), name
        elif s.kind is int:
            assert (widget.minimum(), widget.maximum()) == (s.lo, s.hi), name
    assert panel.random_seed.text() == GEN["seed"][0].none


def test_generate_tab_starts_on_the_generation_defaults(panel):
    assert panel.request_value() == GenerationConfig()
    assert panel.random_seed.isChecked() and not panel.seed.isEnabled()


def test_generate_tab_holds_every_value_the_engine_accepts(panel):
    """The largest seed, k and length the command line takes are also the Generate tab's."""
    for bound in ("lo", "hi"):
        values = {n: getattr(s, bound) for n, (s, _) in GEN.items() if s.kind is not str}
        for name, value in values.items():
            panel.spins[name].setValue(value)
        panel.random_seed.setChecked(False)
        panel.prime.setText("ab")
        got = panel.request_value()
        assert got.prime == "ab"
        assert {n: getattr(got, n) for n in values} == pytest.approx(values), bound
