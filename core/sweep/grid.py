"""Sweep grids: the settings a grid may vary, parsing ``--grid`` specs into axes, the points
(their Cartesian product), a point's result, ranking results and the table the command line
prints. Running the points is charlstm_core.sweep.run.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..engine.parallel import usable_cores  # noqa: F401 - charlstm_core.sweep offers it
from ..errors import ConfigError
from ..training.threads import split_cores  # noqa: F401 - the thread rule, offered here too

_MODEL_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size"}
_BUDGET_FIELDS = ("steps", "epochs", "minutes")
_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in _BUDGET_FIELDS}
SWEEPABLE = tuple(_MODEL_FIELDS) + tuple(_TRAIN_FIELDS)  # every field a grid may vary
MAX_POINTS = 1000  # a grid larger than this is almost certainly a typo


@dataclass(frozen=True)
class Axis:
    """One setting of a grid and its values (already of the field's type)."""

    field: str  # ModelConfig or TrainConfig field name
    values: tuple[Any, ...]
    label: str  # the name the user gave (e.g. "lr", "hidden"), used in tables


@dataclass(frozen=True)
class SweepPoint:
    """One combination of a grid's values."""

    index: int  # 0-based position in the grid
    changes: dict[str, Any]  # field name -> value
    label: str  # "lr=0.002 hidden=256"
    steps: int | None = None  # its own step budget, replacing the base's (see calibration.py)

    def configs(
        self, base_model: ModelConfig, base_train: TrainConfig
    ) -> tuple[ModelConfig, TrainConfig]:
        """The base settings with this point's changes (and its own steps) applied, validated."""
        m = {k: v for k, v in self.changes.items() if k in _MODEL_FIELDS}
        t = {k: v for k, v in self.changes.items() if k in _TRAIN_FIELDS}
        if self.steps is not None:
            t.update(steps=self.steps, epochs=None, minutes=None)
        try:
            return (
                dataclasses.replace(base_model, **m).validate(),
                dataclasses.replace(base_train, **t).validate(),
            )
        except ConfigError as e:
            raise ConfigError(f"Grid point {self.label}: {e}") from None


@dataclass(frozen=True)
class PointResult:
    """How one point of a sweep ended."""

    index: int
    label: str
    changes: dict[str, Any]
    status: str  # "finished", "stopped", "diverged", "failed" or "skipped"
    run_id: int | None  # its row in the run store (None when not recorded)
    steps: int
    best_val_loss: float | None  # nats per character
    final_val_loss: float | None
    chars_per_sec: float | None
    duration_s: float  # the run's duration (charlstm_core.training.measures)
    model_path: str | None
    message: str | None  # why it diverged, failed or was not recorded
    host: str | None = None  # the computer that trained it, for a point run on a Dask cluster

    @property
    def ok(self) -> bool:
        """Trained to its end (or stopped) with a validation loss to rank it by."""
        return self.status in ("finished", "stopped") and self.best_val_loss is not None


# ---------------------------------------------------------------------------------------------
# Grids


def _parse_value(field: dataclasses.Field, text: str, key: str) -> Any:
    kind = type(field.default)
    text = text.strip()
    if not text:
        raise ConfigError(f"--grid {key}: an empty value; write values as {key}=V1,V2,...")
    try:
        if kind is int:
            value = float(text)
            if not value.is_integer():
                raise ValueError
            rule = field.metadata.get("setting")
            if rule is not None and abs(value) >= 2**63 and not rule.lo <= value <= rule.hi:
                # said here, with the value as typed: int(1e300) would print 301 digits (a
                # value in reach is checked with the whole point, Grid point ...: the rule)
                raise ConfigError(
                    f"--grid {key}: {text} is outside the {rule.name}'s range, "
                    f"{int(rule.lo):,} to {int(rule.hi):,}."
                )
            return int(value)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"--grid {key}: {text!r} is not {what}.") from None
    return text


def parse_grid(specs: list[str], aliases: dict[str, str] | None = None) -> list[Axis]:
    """Axes from ``["lr=2e-3,4e-3", "hidden=256,512"]``.

    A key is a field name (``hidden_size``, ``lr``) or one of ``aliases`` (the command line's
    option names, e.g. ``{"hidden": "hidden_size"}``); dashes count as underscores. Values are
    converted to the field's type; a wrong key or value is a ``ConfigError`` naming it.
    """
    aliases = {k.replace("-", "_"): v for k, v in (aliases or {}).items()}
    axes: list[Axis] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--grid {spec!r}: write a setting and its values, e.g. lr=2e-3,4e-3."
            )
        name = key.replace("-", "_")
        name = aliases.get(name, name)
        if name in _BUDGET_FIELDS:
            raise ConfigError(
                f"--grid {key}: every point trains for the same budget; give it with --steps, "
                "--epochs or --minutes instead."
            )
        field = _MODEL_FIELDS.get(name) or _TRAIN_FIELDS.get(name)
        if field is None:
            known = sorted(set(aliases) | set(SWEEPABLE))
            raise ConfigError(
                f"--grid {key}: there is no setting called {key!r}. Settings: {', '.join(known)}."
            )
        if any(a.field == name for a in axes):
            raise ConfigError(
                f"--grid {key}: this setting is given twice; list all its values once."
            )
        parsed = tuple(_parse_value(field, v, key) for v in values.split(","))
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"--grid {key}: a value is listed twice.")
        axes.append(Axis(field=name, values=parsed, label=key))
    return axes


def grid_points(
    axes: list[Axis], base_model: ModelConfig, base_train: TrainConfig
) -> list[SweepPoint]:
    """Every combination of the axes' values, each checked against the config ranges."""
    if not axes:
        raise ConfigError("Give at least one setting to vary, e.g. --grid lr=2e-3,4e-3,8e-3.")
    n = math.prod(len(a.values) for a in axes)
    if n > MAX_POINTS:
        raise ConfigError(f"This grid has {n:,} points; at most {MAX_POINTS:,} are allowed.")
    points = []
    for i, combo in enumerate(itertools.product(*(a.values for a in axes))):
        changes = {a.field: v for a, v in zip(axes, combo, strict=True)}
        label = " ".join(f"{a.label}={show_value(v)}" for a, v in zip(axes, combo, strict=True))
        point = SweepPoint(index=i, changes=changes, label=label)
        point.configs(base_model, base_train)  # fail now, not after an hour of other points
        points.append(point)
    return points


def show_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def point_file_name(point: SweepPoint) -> str:
    """``03_lr=0.004_hidden=256.npz``: the model file of a point inside the sweep's folder."""
    safe = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", point.label.replace(" ", "_"))
    return f"{point.index + 1:02d}_{safe}.npz"


def rank(results: list[PointResult]) -> list[PointResult]:
    """Best first: points with a validation loss by best validation loss (ties by index), then
    those without one or that diverged or failed, in grid order."""
    return sorted(
        results,
        key=lambda r: (0, r.best_val_loss, r.index) if r.ok else (1, math.inf, r.index),
    )


def sweep_label(text_name: str) -> str:
    """A label for a new sweep's runs: the text's stem and the local time."""
    return f"{Path(text_name).stem} {time.strftime('%Y-%m-%d %H:%M:%S')}"
