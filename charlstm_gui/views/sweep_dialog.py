"""The "Try several settings…" dialog: one or two settings, their values, a budget per run.

Values are typed as a list (``2e-3, 4e-3, 8e-3``) and checked against the setting's range and kind
(the same ``Field`` limits as the settings form) as they are typed; the grid is every combination.
The sweep runs on this computer, one run at a time, or on a Dask cluster: its scheduler's address
and a Connect check that lists the workers (their cores, memory, GPUs and the project's version
there), asked for off the GUI thread through ``check_cluster`` (the controller's). The dialog
only describes the sweep (``SweepSpec``); the controller runs it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from charlstm_core.engine.parallel import usable_cores
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
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
    cluster: str = ""  # a Dask scheduler's address: its workers train the runs ("": here)
    jobs: int = 1  # runs at once on this computer (1: the app's own trainer, drawn live)

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


WORKER_COLUMNS = ("Host", "Address", "Cores", "Memory", "GPU", "Version")


class SweepDialog(QDialog):
    """Choose the grid, the budget and where it runs; ``spec()`` after ``exec()`` returns
    Accepted. ``check_cluster(address, done)`` lists a scheduler's workers off the GUI thread
    (``done(workers)`` or ``done(message)``); without it the cluster choice is hidden."""

    def __init__(
        self,
        current: dict[str, Any],
        parent: QWidget | None = None,
        *,
        check_cluster: Callable[[str, Callable[[Any], None]], None] | None = None,
        cluster_address: str = "",
    ) -> None:
        super().__init__(parent)
        self._check_cluster = check_cluster
        self._checks = 0  # the Connect check whose answer is awaited (older ones are dropped)
        self.setWindowTitle("Try several settings")
        self.current = current
        intro = QLabel(
            "Train one run per combination of these values on the current text, with every "
            "other setting as in the Settings panel. Each run is kept in the Runs list and drawn "
            "on the plot; the best validation loss wins."
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
        self._add_where(form, cluster_address)
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
        self.setMinimumWidth(640)  # the workers' table, its six columns without scrolling
        self.resize(640, self.sizeHint().height())

    def _add_where(self, form: QFormLayout, address: str) -> None:
        """Run on: this computer, or a Dask cluster at an address, with its Connect check."""
        self.here = QRadioButton("This &computer,")
        self.here.setToolTip(
            "Train the runs here: one at a time, each drawn live on the loss plot, or several at "
            "once in separate processes sharing the cores (each joins the plot when it ends)."
        )
        self.jobs = QSpinBox()
        self.jobs.setRange(1, max(1, usable_cores()))
        self.jobs.setValue(1)
        self.jobs.setSuffix(" at once")
        self.jobs.setToolTip(
            "Runs trained at the same time on this computer, the cores shared between them "
            "(as charlstm sweep --jobs)."
        )
        self.jobs.valueChanged.connect(self._validate)
        self.on_cluster = QRadioButton("A Dask c&luster at")
        self.on_cluster.setToolTip(
            "Train the runs on the workers of a Dask scheduler (dask scheduler, dask worker), "
            "as many at once as they have threads; each run's model and record come back here. "
            "Never expose a scheduler beyond a network you trust: it runs the code it is sent."
        )
        group = QButtonGroup(self)
        group.addButton(self.here)
        group.addButton(self.on_cluster)
        self.here.setChecked(True)
        self.address = QLineEdit(address)
        self.address.setPlaceholderText("tcp://192.168.1.20:8786")
        self.address.setToolTip(
            "The scheduler's address, as 'dask scheduler' prints it (tcp://HOST:8786, or "
            "tls://… with Dask's TLS settings)."
        )
        self.connect_button = QPushButton("C&onnect")
        self.connect_button.setToolTip("Reach the scheduler and list its workers.")
        self.connect_button.clicked.connect(self.check_workers)
        self.workers = QTableWidget(0, len(WORKER_COLUMNS))
        self.workers.setHorizontalHeaderLabels(WORKER_COLUMNS)
        self.workers.verticalHeader().setVisible(False)
        self.workers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.workers.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.workers.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self._fit_workers(0)
        self.cluster_note = QLabel("Press Connect to see the cluster's workers.")
        self.cluster_note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.on_cluster)
        row.addWidget(self.address, 1)
        row.addWidget(self.connect_button)
        run_on = QLabel("Run on:")
        here = QHBoxLayout()
        here.addWidget(self.here)
        here.addWidget(self.jobs)
        here.addStretch(1)
        form.addRow(run_on, here)
        form.addRow("", row)
        form.addRow("", self.cluster_note)
        form.addRow("", self.workers)
        for w in (self.on_cluster, self.address):
            w.setVisible(self._check_cluster is not None)
        from charlstm_core.sweep.cluster_workers import INSTALL_HINT, dask_available

        if self._check_cluster is not None and not dask_available():
            self.on_cluster.setEnabled(False)
            self.address.setEnabled(False)
            self.on_cluster.setToolTip(INSTALL_HINT)
            self.address.setToolTip(INSTALL_HINT)
        self.on_cluster.toggled.connect(self._where_changed)
        self.address.textChanged.connect(self._address_edited)
        self._where_changed(False)

    # ---------------------------------------------------------------- reactions
    def _where_changed(self, on_cluster: bool) -> None:
        shown = on_cluster and self._check_cluster is not None
        for w in (self.connect_button, self.cluster_note, self.workers):
            w.setVisible(shown)
        self.address.setEnabled(on_cluster and self.on_cluster.isEnabled())
        self.jobs.setEnabled(not on_cluster)
        self._validate()
        if self.isVisible():
            self.adjustSize()  # room for the workers' table, or none

    def _address_edited(self, _text: str) -> None:
        self._checks += 1  # an answer for the old address no longer applies
        self.workers.setRowCount(0)
        self.cluster_note.setStyleSheet("")
        self.cluster_note.setText("Press Connect to see the cluster's workers.")
        self.connect_button.setEnabled(True)
        self._validate()

    def check_workers(self) -> None:
        """Reach the scheduler off the GUI thread; the table lists its workers."""
        address = self.address.text().strip()
        if self._check_cluster is None or not address:
            return
        self._checks += 1
        check = self._checks
        self.connect_button.setEnabled(False)
        self.workers.setRowCount(0)
        self.cluster_note.setStyleSheet("")
        self.cluster_note.setText(f"Connecting to {address}…")
        self._check_cluster(address, lambda answer: self._checked(check, answer))

    def _checked(self, check: int, answer: Any) -> None:
        from shiboken6 import isValid

        if not isValid(self) or check != self._checks:
            return  # the dialog was closed, or the address changed meanwhile
        self.connect_button.setEnabled(True)
        if isinstance(answer, str):
            self.cluster_note.setStyleSheet("color: #b00020;")
            self.cluster_note.setText(answer)
            return
        self.show_workers(answer)

    def _fit_workers(self, n: int) -> None:
        """The workers' table as tall as its rows: 2 to 8 shown, more scroll."""
        rows = self.workers.verticalHeader().defaultSectionSize()
        head = self.workers.horizontalHeader().sizeHint().height()
        frame = 2 * self.workers.frameWidth() + 2
        self.workers.setFixedHeight(head + min(8, max(2, n)) * rows + frame)
        if self.isVisible():
            self.adjustSize()

    def show_workers(self, workers: list[Any]) -> None:
        """The workers (``charlstm_core.sweep.cluster.WorkerInfo``) in the table, and a line
        saying whether the sweep can use them."""
        from charlstm_core import __version__

        self.workers.setRowCount(len(workers))
        for i, w in enumerate(workers):
            cells = (
                w.host,
                w.address,
                str(w.threads),
                f"{w.memory_bytes / 1e9:.1f} GB" if w.memory_bytes else "no limit",
                f"{w.gpus:g}" if w.gpus else "—",
                w.version or "not installed",
            )
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 5 and w.version != __version__:
                    item.setForeground(Qt.GlobalColor.red)
                    item.setToolTip(f"This computer has {__version__}; the sweep refuses it.")
                self.workers.setItem(i, j, item)
        self._fit_workers(len(workers))
        bad = [w for w in workers if w.version != __version__]
        if not workers:
            text, colour = "The scheduler has no workers yet: start some with dask worker.", True
        elif bad:
            text = (
                f"{len(bad)} worker(s) lack CharLSTM Studio {__version__} (in red): install it "
                "there, or stop them, before starting."
            )
            colour = True
        else:
            cores = sum(w.threads for w in workers)
            text = f"{len(workers)} worker(s), {cores} at once: ready."
            colour = False
        self.cluster_note.setStyleSheet("color: #b00020;" if colour else "")
        self.cluster_note.setText(text)

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
        if spec.cluster:
            total = ""  # they train side by side there
            timed = timed.replace("first", "first on a worker")
        elif spec.jobs > 1 and spec.unit == "minutes":
            total = f", about {spec.budget * math.ceil(n / spec.jobs):g} minutes in all"
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
        cluster = ""
        if self.on_cluster.isChecked():
            cluster = self.address.text().strip()
            if not cluster:
                raise ValueError("Type the Dask scheduler's address, e.g. tcp://HOST:8786.")
        jobs = 1 if cluster else int(self.jobs.value())
        return SweepSpec(
            grid, unit, budget, unit == "minutes" and self.same_steps.isChecked(), cluster, jobs
        )

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


def jobs_sweep_state(sweep: Any) -> str:
    """The status bar's words for a sweep of several runs at once (a ``SweepState`` on a
    cluster, or ``jobs`` > 1 here): 'Sweep on the cluster: 2 training, 3/8 ended (lr=0.004 on
    host-a: step 1,200/3,000, loss 1.834)'."""
    where = "on the cluster" if sweep.cluster else f"here, {sweep.jobs} at once"
    if sweep.timing:
        on = " on a worker" if sweep.cluster else ""
        return f"Sweep {where}: timing {len(sweep.points)} settings{on}…"
    if sweep.cluster and not sweep.cluster_workers:
        return f"Sweep: connecting to {sweep.cluster}…"
    running = [p for p in sweep.points if p.status == "running"]
    ended = sum(p.status not in ("waiting", "running") for p in sweep.points)
    text = f"Sweep {where}: {len(running)} training, {ended}/{len(sweep.points)} ended"
    if running and running[0].progress:
        p = running[0]
        text += f" ({p.label} on {p.host}: {p.progress})"
    return text
