"""The settings form's presets: ready-made settings, each a partial set of the form's values.

A preset names only what it chooses; every other setting keeps its value (in the form's defaults,
the config field's default). The app starts on ``START``. Each value is checked against its
config field's range by ``tests/test_settings_agree.py``.
"""

from __future__ import annotations

from typing import Any

START = "Quick look"  # the preset a first start of the app shows

PRESETS: dict[str, dict[str, Any]] = {
    "Quick look": dict(
        hidden_size=128,
        num_layers=1,
        dropout=0.0,
        seq_len=64,
        batch_size=32,
        lr=0.003,
        warmup_steps=50,
        duration_unit="steps",
        duration=1000,
        eval_every=100,
        sample_every=200,
        sample_length=200,
    ),
    "Balanced": dict(
        hidden_size=256,
        num_layers=2,
        dropout=0.1,
        seq_len=100,
        batch_size=32,
        lr=0.002,
        warmup_steps=100,
        duration_unit="steps",
        duration=5000,
        eval_every=200,
        sample_every=500,
        sample_length=300,
    ),
    "Best quality": dict(
        hidden_size=512,
        num_layers=2,
        dropout=0.2,
        seq_len=100,
        batch_size=32,
        lr=0.002,
        warmup_steps=200,
        duration_unit="minutes",
        duration=120,
        eval_every=500,
        sample_every=1000,
        sample_length=500,
    ),
}
# Unlocked when the Device is a GPU (charlstm_core.backend): sizes a 2-core CPU cannot train in a
# day. Not yet measured on a GPU (README, "Training on a GPU").
GPU_PRESETS: dict[str, dict[str, Any]] = {
    "GPU: large": dict(
        hidden_size=1024, num_layers=3, dropout=0.5, seq_len=100, batch_size=128, lr=0.002,
        warmup_steps=200, duration_unit="minutes", duration=10, eval_every=500,
        sample_every=1000, sample_length=500,
    ),
    "GPU: largest": dict(
        hidden_size=2048, num_layers=4, dropout=0.5, seq_len=100, batch_size=256, lr=0.001,
        warmup_steps=500, duration_unit="minutes", duration=60, eval_every=500,
        sample_every=1000, sample_length=500,
    ),
}  # fmt: skip
PRESETS.update(GPU_PRESETS)
PRESET_TIPS = {
    "GPU: large": "Three layers of 1,024, batch 128, for 10 minutes on a GPU (choose a GPU as "
    "the Device to unlock it). Not yet measured on a GPU.",
    "GPU: largest": "Four layers of 2,048, batch 256, for an hour: the largest model, for texts "
    "of 10 MB or more on a GPU with 16 GB+. Not yet measured on a GPU.",
    "Quick look": "A small one-layer model for 1,000 steps: readable words within minutes.",
    "Balanced": "Two layers of 256 for 5,000 steps: good text from a few MB in under an hour.",
    "Best quality": "Two layers of 512 for two hours: the best this CPU can do; needs 1 MB+ "
    "of text.",
}
