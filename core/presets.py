"""The measured recipes: ready-made training settings for a time budget, as data.

"Quick look", "Balanced" and "Best quality" are time budgets of 1, 10 and 60 minutes, each with
the recipe that learned most in its time in ``benchmarks/sweep_presets.py``: sweeps on this
project's 2-core reference machine, on tinyshakespeare and on Python source, every point given
the steps that fit in the budget on that machine (``charlstm sweep --minutes M --as-steps``).
Validation and samples take part of a budget, so the sweeps make them as the presets do: the
benchmark takes ``QUICK_MONITORING``, ``TEN_MINUTE_MONITORING`` and ``HOUR_MONITORING`` from here.

What each recipe measured is in benchmarks/README.md (``Preset.measured`` names the section), not
here: a preset's words say what it is for, never a figure, so that a new sweep changes one file.

A preset names only what it chooses, as config fields (``ModelConfig``, ``TrainConfig``), its
budget being one of ``steps``, ``epochs`` or ``minutes``; every other setting keeps its field's
default (in the app's form, the value shown). The app starts on ``START``.
``tests/test_settings_agree.py`` checks each value against its field's range and
``tests/test_presets.py`` each recipe against the sweep that chose it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import DURATIONS, ModelConfig, TrainConfig, settings

START = "Quick look"  # the preset a first start of the app shows
BENCHMARKS = "benchmarks/README.md"  # where the presets' figures are
MEASURED = "The presets at a glance"  # the heading there that holds them

# A one-minute run validates often on a small part of the text, so that the loss curve and the
# Inspect tab move within the minute, without spending much of it (the share it costs: the
# benchmarks' "the presets' recipes"; the sweep's steps pay it).
QUICK_MONITORING = dict(val_fraction=0.02, eval_every=100, sample_every=100, sample_length=200)
# Ten minutes: the command line's defaults (validation on the last tenth).
TEN_MINUTE_MONITORING = {
    k: settings(TrainConfig)[k][1]
    for k in ("val_fraction", "eval_every", "sample_every", "sample_length")
}
# An hour (and the GPU presets): the same part of the text, validated and sampled less often.
HOUR_MONITORING = dict(val_fraction=0.1, eval_every=500, sample_every=1000, sample_length=500)

# The recipes (model and training), each the best of its sweep (benchmarks/README.md,
# "2026-11-30: the presets' recipes").
ONE_MINUTE_RECIPE: dict[str, Any] = dict(
    hidden_size=128, num_layers=1, dropout=0.0, seq_len=50, batch_size=32, lr=0.008,
    warmup_steps=50,
)  # fmt: skip
# the command line's defaults (ModelConfig, TrainConfig): chosen at 10 minutes, see README Quality
TEN_MINUTE_RECIPE: dict[str, Any] = {
    **{k: settings(ModelConfig)[k][1] for k in ("hidden_size", "num_layers", "dropout")},
    **{k: settings(TrainConfig)[k][1] for k in ("seq_len", "batch_size", "lr", "warmup_steps")},
}
# An hour is many passes over a 1 MB text: the 10-minute recipe over-fits it within a quarter of
# the hour, and a bigger model held back by dropout 0.5 learned most (benchmarks/README.md, "an
# hour on 1 MB").
HOUR_RECIPE: dict[str, Any] = dict(
    hidden_size=512, num_layers=2, dropout=0.5, seq_len=50, batch_size=32, lr=0.005,
    warmup_steps=100,
)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """A recipe and its budget: config fields and their values, and what it is for in words."""

    name: str
    settings: Mapping[str, Any]  # field -> value (ModelConfig, TrainConfig), the budget included
    about: str  # what it is for, in a sentence or two, without a figure
    measured: str = ""  # the heading of BENCHMARKS that holds its figures; "": not measured
    gpu: bool = False  # sized for a GPU (the app offers it when the device is one)

    @property
    def budget(self) -> tuple[str, float]:
        """How long it trains: (``"minutes"``, 10) or another of ``DURATIONS``."""
        (unit,) = (u for u in DURATIONS if u in self.settings)
        return unit, self.settings[unit]

    def configs(self, vocab_size: int, **changes: Any) -> tuple[ModelConfig, TrainConfig]:
        """The preset over the fields' defaults, with ``changes`` (a budget given replaces the
        preset's), validated: what ``charlstm train`` with these values would train."""
        values = dict(self.settings)
        if any(u in changes for u in DURATIONS):
            values = {k: v for k, v in values.items() if k not in DURATIONS}
        values.update(changes)
        model = {k: v for k, v in values.items() if k in settings(ModelConfig)}
        train = {k: v for k, v in values.items() if k not in model}
        return (
            ModelConfig(vocab_size=vocab_size, **model).validate(),
            TrainConfig(**train).validate(),
        )

    def describe(self) -> str:
        """Its budget, recipe, validation, purpose and where it was measured, in words (the
        app's tooltip)."""
        s = self.settings
        validation = (
            f"it validates on {s['val_fraction']:.0%} of the text every {s['eval_every']:,} steps"
        )
        measured = (
            f"Measured: see the benchmarks ({BENCHMARKS}, “{self.measured}”)."
            if self.measured
            else f"Not yet measured{' on a GPU' if self.gpu else ''}."
        )
        return (
            f"{budget_text(*self.budget)}: {recipe_text(s)}; {validation}. {self.about} {measured}"
        )


def budget_text(unit: str, value: float) -> str:
    """``One minute``, ``Ten minutes``, ``An hour``, ``2.5 epochs``, ``5,000 steps``."""
    if unit == "minutes" and value in (1, 10, 60):
        return {1: "One minute", 10: "Ten minutes", 60: "An hour"}[int(value)]
    return f"{value:,} {unit}" if unit == "steps" else f"{value:g} {unit}"


def recipe_text(p: Mapping[str, Any]) -> str:
    """``"one layer of 512, window 50, batch 32, learning rate 0.008, dropout 0.2"``."""
    layers = ("one layer", "two layers", "three layers", "four layers")[p["num_layers"] - 1]
    dropout = "no dropout" if not p["dropout"] else f"dropout {p['dropout']:g}"
    return (
        f"{layers} of {p['hidden_size']:,}, window {p['seq_len']}, batch {p['batch_size']}, "
        f"learning rate {p['lr']:g}, {dropout}"
    )


_PRESETS = (
    Preset(
        "Quick look",
        dict(**ONE_MINUTE_RECIPE, minutes=1, **QUICK_MONITORING),
        "Validating often lets the curve and the Inspect tab move within the minute. The best "
        "recipe of the one-minute sweeps on both texts: in a minute, a small model's extra "
        "steps beat a bigger model's capacity.",
        MEASURED,
    ),
    Preset(
        "Balanced",
        dict(**TEN_MINUTE_RECIPE, minutes=10, **TEN_MINUTE_MONITORING),
        "The command line's defaults, the best recipe of the ten-minute sweeps.",
        MEASURED,
    ),
    Preset(
        "Best quality",
        dict(**HOUR_RECIPE, minutes=60, **HOUR_MONITORING),
        "A bigger model held back by dropout: the best of the hour-long sweeps on both 1 MB "
        "texts, where Balanced's recipe, given the hour, over-fits.",
        MEASURED,
    ),
    # Sizes a 2-core CPU cannot train in a day (charlstm_core.engine.devices); not yet measured
    # on a GPU (README, "Training on a GPU").
    Preset(
        "GPU: large",
        dict(
            hidden_size=1024, num_layers=3, dropout=0.5, seq_len=100, batch_size=128, lr=0.002,
            warmup_steps=200, minutes=10, **HOUR_MONITORING,
        ),
        "For a GPU: choose one as the Device to unlock it.",
        gpu=True,
    ),
    Preset(
        "GPU: largest",
        dict(
            hidden_size=2048, num_layers=4, dropout=0.5, seq_len=100, batch_size=256, lr=0.001,
            warmup_steps=500, minutes=60, **HOUR_MONITORING,
        ),
        "The largest model, for texts of 10 MB or more on a GPU with 16 GB or more: choose one "
        "as the Device to unlock it.",
        gpu=True,
    ),
)  # fmt: skip
PRESETS: dict[str, Preset] = {p.name: p for p in _PRESETS}
