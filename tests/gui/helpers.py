"""Shared helpers of the GUI tests: a small generated text and tiny, fast settings."""

from __future__ import annotations

from pathlib import Path

TINY = dict(
    hidden_size=16,
    num_layers=1,
    dropout=0.0,
    seq_len=16,
    batch_size=4,
    lr=0.01,
    warmup_steps=0,
    duration_unit="steps",
    duration=30,
    eval_every=10,
    sample_every=10,
    sample_length=20,
    checkpoint_every=0,
    val_fraction=0.1,
)


def small_text(path: Path, extra: str = "") -> Path:
    words = "the quick brown fox jumps over the lazy dog while a cat sleeps in the sun".split()
    lines = [
        " ".join(words[(i * 7) % len(words) :] + words[: (i * 7) % len(words)]) for i in range(60)
    ]
    path.write_text("\n".join(lines) + extra + "\n", encoding="utf-8")
    return path
