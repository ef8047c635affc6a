"""The settings form's presets: ready-made settings, each a partial set of the form's values.

"Quick look", "Balanced" and "Best quality" are time budgets of 1, 10 and 60 minutes, each with
the recipe that learned most in its time in ``benchmarks/sweep_presets.py``: sweeps on this
project's 2-core reference machine, on tinyshakespeare and on Python source, every point given
the steps that fit in the budget on that machine (``charlstm sweep --minutes M --as-steps``); the
tables are in benchmarks/README.md. Validation and samples take part of a budget, so the sweeps
make them as the presets do: the benchmark takes ``QUICK_MONITORING``, ``TEN_MINUTE_MONITORING``
and ``HOUR_MONITORING`` from here.

A preset names only what it chooses; every other setting keeps its value (in the form's defaults,
the config field's default). The app starts on ``START``. Each value is checked against its
config field's range by ``tests/test_settings_agree.py``, and each tip against its preset.
"""

from __future__ import annotations

from typing import Any

from charlstm_core.config import ModelConfig, TrainConfig, settings

START = "Quick look"  # the preset a first start of the app shows

# A one-minute run validates often on a small part of the text, so that the loss curve and the
# Inspect tab move within the minute, without spending much of it: measured at H=128 and 256,
# 3-4% of the time on a 1 MB text, 11-14% on the 4 MB built-in one (the sweep's steps pay it).
QUICK_MONITORING = dict(val_fraction=0.02, eval_every=100, sample_every=100, sample_length=200)
# Ten minutes: the command line's defaults (validation on the last tenth).
TEN_MINUTE_MONITORING = {
    k: settings(TrainConfig)[k][1]
    for k in ("val_fraction", "eval_every", "sample_every", "sample_length")
}
# An hour: the same part of the text, validated and sampled less often.
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

# An hour is 17-38 passes over a 1 MB text: the 10-minute recipe over-fits it within a quarter of
# the hour, and a bigger model held back by dropout 0.5 learned most (benchmarks/README.md, "an
# hour on 1 MB").
HOUR_RECIPE: dict[str, Any] = dict(
    hidden_size=512, num_layers=2, dropout=0.5, seq_len=50, batch_size=32, lr=0.005,
    warmup_steps=100,
)  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    "Quick look": dict(
        **ONE_MINUTE_RECIPE, duration_unit="minutes", duration=1, **QUICK_MONITORING
    ),
    "Balanced": dict(
        **TEN_MINUTE_RECIPE, duration_unit="minutes", duration=10, **TEN_MINUTE_MONITORING
    ),
    "Best quality": dict(**HOUR_RECIPE, duration_unit="minutes", duration=60, **HOUR_MONITORING),
}
# Unlocked when the Device is a GPU (charlstm_core.engine.devices): sizes a 2-core CPU cannot train
# in a
# day. Not yet measured on a GPU (README, "Training on a GPU").
GPU_PRESETS: dict[str, dict[str, Any]] = {
    "GPU: large": dict(
        hidden_size=1024, num_layers=3, dropout=0.5, seq_len=100, batch_size=128, lr=0.002,
        warmup_steps=200, duration_unit="minutes", duration=10, eval_every=500,
        sample_every=1000, sample_length=500, val_fraction=0.1,
    ),
    "GPU: largest": dict(
        hidden_size=2048, num_layers=4, dropout=0.5, seq_len=100, batch_size=256, lr=0.001,
        warmup_steps=500, duration_unit="minutes", duration=60, eval_every=500,
        sample_every=1000, sample_length=500, val_fraction=0.1,
    ),
}  # fmt: skip
PRESETS.update(GPU_PRESETS)


def recipe_text(p: dict[str, Any]) -> str:
    """``"one layer of 512, window 50, batch 32, learning rate 0.008, dropout 0.2"``."""
    layers = ("one layer", "two layers", "three layers", "four layers")[p["num_layers"] - 1]
    dropout = "no dropout" if not p["dropout"] else f"dropout {p['dropout']:g}"
    return (
        f"{layers} of {p['hidden_size']:,}, window {p['seq_len']}, batch {p['batch_size']}, "
        f"learning rate {p['lr']:g}, {dropout}"
    )


PRESET_TIPS = {
    "GPU: large": "Three layers of 1,024, batch 128, for 10 minutes on a GPU (choose a GPU as "
    "the Device to unlock it). Not yet measured on a GPU.",
    "GPU: largest": "Four layers of 2,048, batch 256, for an hour: the largest model, for texts "
    "of 10 MB or more on a GPU with 16 GB+. Not yet measured on a GPU.",
    "Quick look": f"One minute: {recipe_text(PRESETS['Quick look'])}; it validates on 2% of "
    "the text every 100 steps, so the curve and the Inspect tab move within the minute. The best "
    "of 6 recipes (hidden 128-512, learning rate 0.004-0.008) in one-minute sweeps on a 2-core "
    "CPU, on both texts: validation loss 1.790 on tinyshakespeare (2,776 steps), 1.745 on "
    "Python source (2,524 steps).",
    "Balanced": f"Ten minutes: {recipe_text(PRESETS['Balanced'])} (the command line's "
    "defaults). On a 2-core CPU: validation loss 1.494 on tinyshakespeare in 10 minutes "
    "(2,934 steps; the best of 51 recipes in a 10-minute proxy sweep), 1.241 on Python source "
    "(4,088 steps, 10 calibrated minutes; two layers of 384 tied at 1.240).",
    "Best quality": f"An hour: {recipe_text(PRESETS['Best quality'])}. The best of 3 recipes "
    "in hour-long sweeps on a 2-core CPU, on both 1 MB texts: validation loss 1.466 on "
    "tinyshakespeare (at step 8,000 of 10,420; 1.481 at the end), 1.152 on Python source (1.165 "
    "at the end). Balanced's recipe, given the hour, over-fitted both (at best 1.510 and 1.255).",
}
