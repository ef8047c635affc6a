"""Frozen configuration of the model and of a training run, with range checks.

Both are plain frozen dataclasses: ``dataclasses.asdict`` turns them into JSON-able dicts (stored in
model files and the GUI's settings) and ``from_dict`` turns such a dict back, ignoring unknown keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

DTYPES = ("float32", "float64")
SCHEDULES = ("constant", "cosine")
ON_DIVERGENCE = ("heal", "stop")
ON_DIVERGENCE_HELP = (
    "what to do when training blows up (the loss far above its recent level and above a uniform "
    "guess, or infinite): heal = roll back to the last good weights, halve the learning rate and "
    "continue; stop = stop with the last good weights"
)
VAL_SPLITS = ("last", "blocks")  # where validation comes from: see core.data.split_ids


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int  # V: number of distinct characters (sorted by code point)
    hidden_size: int = 512  # H: LSTM units per layer (8..2048)
    num_layers: int = 1  # L: stacked LSTM layers (1..4)
    dropout: float = 0.2  # inverted dropout between layers and before the decoder (training only)
    dtype: str = "float32"  # "float32" (fast) or "float64" (gradient checks)

    def validate(self) -> ModelConfig:
        _check_int("vocabulary size", self.vocab_size, 1, 2**31 - 1)
        _check_int("hidden size", self.hidden_size, 8, 2048)
        _check_int("number of layers", self.num_layers, 1, 4)
        _check_float("dropout", self.dropout, 0.0, 0.9)
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}.")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d)


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 50  # T: characters per truncated-BPTT window
    batch_size: int = 32  # B: parallel streams over the training text
    lr: float = 8e-3  # Adam peak learning rate (chosen with T=50: README, Benchmarks, Quality)
    lr_schedule: str = "cosine"  # "constant", or warm-up then cosine decay to min_lr_ratio*lr
    warmup_steps: int = 100  # linear warm-up length (cosine schedule only)
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of lr (cosine schedule only)
    clip: float = 5.0  # global gradient-norm clip; 0 disables clipping
    val_fraction: float = 0.1  # the part of the text held out for validation; 0 disables it
    val_split: str = "last"  # "last": the end of the text; "blocks": 10 evenly spaced blocks
    eval_every: int = 200  # steps between validation-loss evaluations (0: only at the end)
    eval_max_chars: int = 1_000_000  # validation uses at most this many chars (the first ones)
    sample_every: int = 500  # steps between samples written during training (0: never)
    sample_length: int = 300  # characters per training sample
    sample_temperature: float = 0.8  # temperature of training samples
    checkpoint_every: int = 1000  # steps between autosaves (0: only when training stops)
    seed: int = 1234  # seeds initialisation, dropout, stream offsets and training samples
    on_divergence: str = "heal"  # "heal" or "stop" when training blows up (ON_DIVERGENCE_HELP)
    steps: int | None = None  # how long to train: exactly one of steps, epochs, minutes is set
    epochs: float | None = None
    minutes: float | None = None

    def validate(self) -> TrainConfig:
        _check_int("sequence length", self.seq_len, 1, 10_000)
        _check_int("batch size", self.batch_size, 1, 4096)
        _check_float("learning rate", self.lr, 1e-7, 1.0)
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(
                f"Learning-rate schedule must be one of {', '.join(SCHEDULES)}, "
                f"not {self.lr_schedule!r}."
            )
        _check_int("warm-up steps", self.warmup_steps, 0, 10**9)
        _check_float("minimum learning-rate ratio", self.min_lr_ratio, 0.0, 1.0)
        _check_float("gradient clip", self.clip, 0.0, 1e6)
        _check_float("validation fraction", self.val_fraction, 0.0, 0.5)
        if self.val_split not in VAL_SPLITS:
            raise ConfigError(
                f"The validation split must be one of {', '.join(VAL_SPLITS)}, "
                f"not {self.val_split!r}."
            )
        _check_int("evaluation interval", self.eval_every, 0, 10**9)
        _check_int("validation size limit", self.eval_max_chars, 1, 10**12)
        _check_int("sample interval", self.sample_every, 0, 10**9)
        _check_int("sample length", self.sample_length, 1, 1_000_000)
        _check_float("sample temperature", self.sample_temperature, 0.0, 10.0)
        _check_int("checkpoint interval", self.checkpoint_every, 0, 10**9)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if self.on_divergence not in ON_DIVERGENCE:
            raise ConfigError(
                f"On divergence must be one of {', '.join(ON_DIVERGENCE)}, "
                f"not {self.on_divergence!r}."
            )
        given = [n for n in ("steps", "epochs", "minutes") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ConfigError(
                "Say how long to train with exactly one of steps, epochs or minutes "
                f"(got {', '.join(given) if given else 'none'})."
            )
        if self.steps is not None:
            _check_int("number of steps", self.steps, 1, 10**12)
        if self.epochs is not None:
            _check_float("number of epochs", self.epochs, 1e-6, 1e6)
        if self.minutes is not None:
            _check_float("number of minutes", self.minutes, 1e-3, 1e7)
        return self

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


def _from_dict(cls, d: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(
            f"The {name} must be a whole number from {lo:,} to {hi:,}, not {value!r}."
        )


def _check_float(name: str, value: Any, lo: float, hi: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not lo <= value <= hi:
        raise ConfigError(f"The {name} must be a number from {lo:g} to {hi:g}, not {value!r}.")
