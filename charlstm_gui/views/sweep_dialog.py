"""The "Try several settings…" dialog: one or two settings, their values, a budget per run.

Values are typed as a list (``2e-3, 4e-3, 8e-3``) and checked against the setting's range and kind
(the same ``Field`` limits as the settings form) as they are typed; the grid is every combination.
The dialog only describes the sweep (``SweepSpec``); the controller runs it.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from .settings_form import FIELDS, Field

# settings worth sweeping: the model's shape and the optimisation (not monitoring or the split,
# which would change what the validation loss measures)
SWEEPABLE = (
    "lr",
    "hidden_size",
    "num_layers",
    "dropout",
    "seq_len",
    "batch_size",
    "warmup_steps",
    "clip",
    "seed",
)
MAX_POINTS = 64
BUDGET_UNITS = ("minutes", "steps")


@dataclass(frozen=True)
class SweepSpec:
    """What to try: ``grid`` maps a setting to its values; each run lasts ``budget`` units."""

    grid: dict[str, list[Any]]
    unit: str  # "minutes" or "steps"
    budget: float
    same_steps: bool = False  # minutes turned into each run's steps by timing it first

    def points(self) -> list[dict[str, Any]]:
        """Every combination, the first setting varying slowest."""
        keys = list(self.grid)
        return [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.grid.values())
        ]


def field(key: str) -> Field:
    return next(f for f in FIELDS if f.key == key)


def parse_values(key: str, text: str) -> list[Any]:
    """The values typed for ``key``, in order without repeats; ValueError says what is wrong."""
    f = field(key)
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    if not parts:
        raise ValueError(f"Type at least one value for {f.label.lower()}.")
    values: list[Any] = []
    for part in parts:
        try:
            x = float(part)
        except ValueError:
            raise ValueError(f"“{part}” is not a number ({f.label.lower()}).") from None
        if not math.isfinite(x):
            raise ValueError(f"“{part}” is not a finite number ({f.label.lower()}).")
        if f.decimals < 0:
            if x != int(x):
                raise ValueError(f"{f.label} takes whole numbers, not {part}.")
            x = int(x)
        if not f.lo <= x <= f.hi:
            raise ValueError(f"{f.label} must be between {f.lo:g} and {f.hi:g}, not {part}.")
        if x not in values:
            values.append(x)
    return values


def suggest(key: str, current: Any) -> str:
    """Three values around the current one: halved, as is, doubled (within the range)."""
    f = field(key)
    if key == "seed":
        return ", ".join(str(int(current) + i) for i in range(3))
    if key == "num_layers":
        return "1, 2"
    if key in ("dropout", "clip"):
        base = [0.0, 0.1, 0.2] if key == "dropout" else [1.0, 5.0]
        return ", ".join(f"{v:g}" for v in base)
    out = []
    for factor in (0.5, 1.0, 2.0):
        v = current * factor
        v = int(round(v)) if f.decimals < 0 else float(f"{v:.3g}")
        if f.lo <= v <= f.hi and v not in out:
            out.append(v)
    return ", ".join(f"{v:g}" for v in out)


class SweepDialog(QDialog):
    """Choose the grid and the budget; ``spec()`` after ``exec()`` returns Accepted."""

    def __init__(self, current: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Try several settings")
        self.current = current
        intro = QLabel(
            "Train one run per combination of these values on the current text, one after "
            "another, with every other setting as in the Settings panel. Each run is kept in "
            "the Runs list and drawn on the plot; the best validation loss wins."
        )
        intro.setWordWrap(True)
        self.keys: list[QComboBox] = []
        self.values: list[QLineEdit] = []
        form = QFormLayout()
        for i in range(2):
            combo = QComboBox()
            for key in SWEEPABLE:
                combo.addItem(field(key).label, key)
            combo.setCurrentIndex(i)  # learning rate, then hidden size
            combo.setToolTip("The setting to vary.")
            edit = QLineEdit()
            edit.setToolTip(
                "Values to try, separated by commas (for example 2e-3, 4e-3, 8e-3). "
                "Each is checked against the setting's range."
            )
            combo.currentIndexChanged.connect(lambda _i, c=combo, e=edit: self._key_changed(c, e))
            edit.textChanged.connect(self._validate)
            self.keys.append(combo)
            self.values.append(edit)
            self._key_changed(combo, edit)
        self.second = QCheckBox("and")
        self.second.setToolTip("Vary a second setting too: every pair of values is tried.")
        self.second.toggled.connect(self._second_toggled)
        row1 = QHBoxLayout()
        row1.addWidget(self.keys[0])
        row1.addWidget(self.values[0], 1)
        row2 = QHBoxLayout()
        row2.addWidget(self.second)
        row2.addWidget(self.keys[1])
        row2.addWidget(self.values[1], 1)
        vary = QLabel("&Vary:")
        vary.setBuddy(self.keys[0])
        form.addRow(vary, row1)
        form.addRow("", row2)
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.01, 1e7)
        self.budget.setDecimals(2)
        self.budget.setValue(2.0)
        self.budget.setToolTip(
            "How long each run trains. Minutes compare what each setting reaches in the same "
            "time; steps compare the same amount of training."
        )
        self.unit = QComboBox()
        self.unit.addItems(BUDGET_UNITS)
        self.unit.currentTextChanged.connect(self._unit_changed)
        self.budget.valueChanged.connect(self._validate)
        row3 = QHBoxLayout()
        row3.addWidget(self.budget, 1)
        row3.addWidget(self.unit)
        each = QLabel("&Each run:")
        each.setBuddy(self.budget)
        form.addRow(each, row3)
        self.same_steps = QCheckBox("&Time each setting first, then train it for fixed steps")
        self.same_steps.setToolTip(
            "Before the first run, time a few steps of each setting on this computer and give "
            "each run the steps that fit in its minutes. What else the computer does meanwhile "
            "then cannot change the result, so the comparison stays fair."
        )
        self.same_steps.toggled.connect(self._validate)
        form.addRow("", self.same_steps)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.PlainText)  # repeats what was typed
        self.summary.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("&Start")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self.summary)
        lay.addWidget(self.buttons)
        self._second_toggled(False)
        self._unit_changed(self.unit.currentText())
        self.resize(560, self.sizeHint().height())

    # ---------------------------------------------------------------- reactions
    def _key_changed(self, combo: QComboBox, edit: QLineEdit) -> None:
        key = combo.currentData()
        edit.setText(suggest(key, self.current.get(key, field(key).lo)))
        self._validate()

    def _second_toggled(self, on: bool) -> None:
        self.keys[1].setEnabled(on)
        self.values[1].setEnabled(on)
        self._validate()

    def _unit_changed(self, unit: str) -> None:
        self.budget.setDecimals(0 if unit == "steps" else 2)
        self.budget.setValue(500 if unit == "steps" else 2.0)
        self.same_steps.setEnabled(unit == "minutes")
        self._validate()

    def _validate(self, *_: Any) -> None:
        if not hasattr(self, "buttons"):
            return  # still building
        try:
            spec = self.spec()
            n = len(spec.points())
            if n < 2:
                raise ValueError("Give at least two values in all, or there is nothing to compare.")
            if n > MAX_POINTS:
                raise ValueError(f"{n} runs is too many for one sweep; keep it to {MAX_POINTS}.")
        except ValueError as exc:
            self.summary.setText(str(exc))
            self.summary.setStyleSheet("color: #b00020;")
            self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
            return
        each = (
            f"{spec.budget:g} minute(s)"
            if spec.unit == "minutes"
            else f"{int(spec.budget):,} steps"
        )
        total = f", about {spec.budget * n:g} minutes in all" if spec.unit == "minutes" else ""
        timed = " Each setting is timed first (a few seconds each)." if spec.same_steps else ""
        self.summary.setText(f"{n} runs of {each} each{total}.{timed}")
        self.summary.setStyleSheet("")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)

    # ---------------------------------------------------------------- result
    def spec(self) -> SweepSpec:
        """The sweep described; ValueError says what is wrong with it."""
        grid: dict[str, list[Any]] = {}
        n_axes = 2 if self.second.isChecked() else 1
        for combo, edit in list(zip(self.keys, self.values, strict=True))[:n_axes]:
            key = combo.currentData()
            if key in grid:
                raise ValueError(f"Choose two different settings (both are {combo.currentText()}).")
            grid[key] = parse_values(key, edit.text())
        unit = self.unit.currentText()
        budget = float(self.budget.value())
        if unit == "steps":
            budget = float(max(1, int(round(budget))))
        return SweepSpec(grid, unit, budget, unit == "minutes" and self.same_steps.isChecked())

    def set_grid(
        self, grid: dict[str, str], unit: str = "steps", budget: float = 100, same_steps=False
    ) -> None:
        """Fill the dialog (tests, and a sweep started again): setting -> values text."""
        items = list(grid.items())
        self.second.setChecked(len(items) > 1)
        for (key, text), combo, edit in zip(items, self.keys, self.values, strict=False):
            combo.setCurrentIndex(SWEEPABLE.index(key))
            edit.setText(text)
        self.unit.setCurrentText(unit)
        self.budget.setValue(budget)
        self.same_steps.setChecked(same_steps)
        self._validate()
