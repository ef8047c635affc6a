"""The settings form: model size, training, duration, monitoring and autosave, with presets.

Each setting's label, range, default and tooltip come from its config field
(``charlstm_core.config``: ``Setting``); this module keeps only how each is shown (``WIDGETS``:
step, decimals, the text of a special lowest value, the unit as a suffix, the label's shortcut
letter; ``CHOICE_NAMES``: how a choice reads) and where (``GROUPS``). The presets are
``charlstm_core.presets``'s, each shown as the form's values (``PRESETS``) with its description as
the tooltip. ``configs()`` builds the frozen configs and lets their ``validate()`` speak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from charlstm_core import presets
from charlstm_core.config import DURATIONS, ModelConfig, Setting, TrainConfig, settings
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..controller import autosaves
from ..widgets.setting_widgets import Widget, label_text, spin_box
from ..widgets.spinboxes import BigSpinBox, Combo, DoubleSpinBox, SpinBox

WIDGETS: dict[str, Widget] = {
    "hidden_size": Widget(32),
    "num_layers": Widget(1),
    "dropout": Widget(0.05, 2),
    "seq_len": Widget(10),
    "batch_size": Widget(8),
    "lr": Widget(0.0005, 5),
    "lr_schedule": Widget(shortcut="s"),
    "warmup_steps": Widget(50),
    "clip": Widget(0.5, 2),
    "on_divergence": Widget(shortcut="u"),
    "val_fraction": Widget(0.01, 3),
    "val_split": Widget(shortcut="o"),
    "seed": Widget(1),
    "eval_every": Widget(50, special="at the end", show_unit=True),
    "sample_every": Widget(50, special="never", show_unit=True),
    "sample_length": Widget(50),
    "sample_temperature": Widget(0.1, 2),
    "checkpoint_every": Widget(100, special="at the end", show_unit=True),
}
# how the choices of a setting read in its drop-down, in the order shown
CHOICE_NAMES: dict[str, dict[str, str]] = {
    "lr_schedule": {"cosine": "cosine", "constant": "constant"},
    "on_divergence": {"heal": "heal and continue", "stop": "stop"},
    "val_split": {"last": "the last part", "blocks": "evenly spaced blocks"},
}
GROUPS: dict[str, tuple[str, ...]] = {
    "Model": ("hidden_size", "num_layers", "dropout"),
    "Training": ("seq_len", "batch_size", "lr", "lr_schedule", "warmup_steps", "clip",
                 "on_divergence", "val_fraction", "val_split", "seed"),
    "Duration": ("duration",),
    "Monitoring": ("eval_every", "sample_every", "sample_length", "sample_temperature",
                   "checkpoint_every"),
}  # fmt: skip
DURATION_UNITS = DURATIONS  # "Train for" counts in one of these TrainConfig fields
DURATION_STEPS = {"steps": 100, "epochs": 0.5, "minutes": 5}  # the arrows' step in each unit
DURATION_TIP = (  # what each unit is comes from its TrainConfig field
    "How long to train, in the unit chosen on the right ("
    + "; ".join(f"{u}: {settings(TrainConfig)[u][0].summary.lower()}" for u in DURATIONS)
    + ")."
)
# the config fields the form shows, with their Setting and default
SHOWN: dict[str, tuple[Setting, Any]] = {
    k: v for cls in (ModelConfig, TrainConfig) for k, v in settings(cls).items() if k in WIDGETS
}


@dataclass(frozen=True)
class Field:
    """A number the form shows: its config field's label, range and help, and its widget."""

    key: str
    label: str
    lo: float
    hi: float
    decimals: int  # -1: whole numbers
    step: float
    tip: str
    group: str


FIELDS: tuple[Field, ...] = tuple(
    Field(key, s.label, s.lo, s.hi, WIDGETS[key].decimals, WIDGETS[key].step, s.help, group)  # type: ignore[arg-type]
    for group, keys in GROUPS.items()
    for key in keys
    if key in SHOWN and (s := SHOWN[key][0]).kind is not str
)


def form_values(p: presets.Preset) -> dict[str, Any]:
    """A preset as the form's values: its budget as "Train for" (duration and its unit)."""
    unit, amount = p.budget
    values = {k: v for k, v in p.settings.items() if k not in DURATIONS}
    return {**values, "duration_unit": unit, "duration": amount}


PRESETS: dict[str, dict[str, Any]] = {n: form_values(p) for n, p in presets.PRESETS.items()}
GPU_PRESETS = tuple(n for n, p in presets.PRESETS.items() if p.gpu)  # offered on a GPU only
START = presets.START
# the first start's values: the fields' defaults, then the starting preset's
DEFAULTS: dict[str, Any] = {
    **{k: default for k, (_, default) in SHOWN.items()},
    **PRESETS[START],
    "autosave_keep": autosaves.DEFAULT_KEEP,
}


def _label(key: str) -> str:
    """The field's label with its Alt+letter marked (``&Hidden size:``)."""
    return label_text(SHOWN[key][0], WIDGETS[key])


class SettingsForm(QWidget):
    """All training settings; ``changed`` fires on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._spins: dict[str, QSpinBox | QDoubleSpinBox | BigSpinBox] = {}
        self._combos: dict[str, QComboBox] = {}
        self._updating = True  # until set_values(DEFAULTS) at the end
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)

        row = QHBoxLayout()
        row.addWidget(QLabel("&Preset:"))
        self.preset = Combo()
        self.preset.addItems([*PRESETS, "Custom"])
        for i, name in enumerate(PRESETS):
            tip = presets.PRESETS[name].describe()
            self.preset.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.preset.setToolTip(
            "Ready-made settings. Pick one, then adjust any field; the preset then reads Custom."
        )
        row.itemAt(0).widget().setBuddy(self.preset)
        self.preset.activated.connect(self._preset_chosen)
        row.addWidget(self.preset, 1)
        outer.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("De&vice:"))
        self.device = QComboBox()  # filled by set_devices(); "cpu" or "gpu:N" as item data
        self.device.setToolTip("Where training runs: the CPU, or an NVIDIA GPU through CuPy.")
        row.itemAt(0).widget().setBuddy(self.device)
        self.device.currentIndexChanged.connect(self._device_changed)
        row.addWidget(self.device, 1)
        outer.addLayout(row)
        self._wanted_device = "auto"
        self.set_devices(None)

        for group, keys in GROUPS.items():
            box = QGroupBox(group)
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            outer.addWidget(box)
            for key in keys:
                if key == "duration":
                    self._add_duration(form)
                    continue
                s = SHOWN[key][0]
                widget = self._make_combo(key, s) if s.kind is str else self._make_spin(key, s)
                form.addRow(_label(key), widget)
                label = form.labelForField(widget)
                if isinstance(label, QLabel):
                    label.setToolTip(s.help)
        self.val_split = self._combos["val_split"]
        self.on_divergence = self._combos["on_divergence"]

        autosave = QGroupBox("Autosave")
        lay = QGridLayout(autosave)
        self.autosave_dir = QLineEdit()
        self.autosave_dir.setToolTip(
            "Folder where checkpoints are written automatically during "
            "training and when it stops. Open them with File ▸ Open "
            "Model to continue."
        )
        self.autosave_dir.editingFinished.connect(self._edited)
        browse = QPushButton("&Browse…")
        browse.setToolTip("Choose the autosave folder.")
        browse.clicked.connect(self._browse)
        self.autosave_keep = SpinBox()
        self.autosave_keep.setRange(0, 1000)
        self.autosave_keep.setPrefix("keep the last ")
        self.autosave_keep.setSuffix(" autosaves")
        self.autosave_keep.setSpecialValueText("keep every autosave")
        self.autosave_keep.setToolTip(
            "Each run writes one autosave file (tens of MB for a big model or a text with many "
            "distinct characters). After each autosave the older ones beyond this number are "
            "deleted; models you saved yourself, under their own names, are never touched. "
            "0 keeps every autosave."
        )
        self.autosave_keep.valueChanged.connect(self._edited)
        self.autosave_size = QLabel()
        self.autosave_size.setToolTip("What the autosave folder holds now.")
        self.autosave_dir.editingFinished.connect(self.show_autosave_size)
        lay.addWidget(self.autosave_dir, 0, 0)
        lay.addWidget(browse, 0, 1)
        lay.addWidget(self.autosave_keep, 1, 0)
        lay.addWidget(self.autosave_size, 2, 0, 1, 2)
        lay.setColumnStretch(0, 1)
        outer.addWidget(autosave)

        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b00020;")
        self.problem.hide()
        outer.addWidget(self.problem)
        outer.addStretch(1)
        self.set_values(DEFAULTS)
        self.preset.setCurrentText(START)

    # ---------------------------------------------------------------- building
    def _make_spin(self, key: str, s: Setting) -> QSpinBox | QDoubleSpinBox | BigSpinBox:
        spin = spin_box(s, WIDGETS[key])
        spin.valueChanged.connect(self._edited)
        self._spins[key] = spin
        return spin

    def _make_combo(self, key: str, s: Setting) -> QComboBox:
        combo = Combo()
        for value, name in CHOICE_NAMES[key].items():
            combo.addItem(name, value)
        combo.setToolTip(s.help)
        combo.currentIndexChanged.connect(self._edited)
        self._combos[key] = combo
        return combo

    def _add_duration(self, form: QFormLayout) -> None:
        """ "Train for": a number and its unit, one of TrainConfig's steps, epochs or minutes."""
        spin = DoubleSpinBox()
        spin.setToolTip(DURATION_TIP)
        spin.setAccelerated(True)
        spin.setKeyboardTracking(False)
        spin.valueChanged.connect(self._edited)
        self._spins["duration"] = spin
        self.unit = Combo()
        self.unit.addItems(DURATION_UNITS)
        self.unit.setToolTip(
            "Count the run in optimizer steps, passes over the training text (epochs) or minutes."
        )
        self.unit.currentIndexChanged.connect(self._unit_changed)
        line = QHBoxLayout()
        line.addWidget(spin, 1)
        line.addWidget(self.unit)
        form.addRow("Train for:", line)
        label = form.labelForField(line)
        if isinstance(label, QLabel):
            label.setToolTip(DURATION_TIP)
        self._unit_changed()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Autosave folder", self.autosave_dir.text())
        if folder:
            self.autosave_dir.setText(folder)
            self.show_autosave_size()
            self._edited()

    def show_autosave_size(self) -> None:
        """Show how many autosaves the folder holds and their size (after each autosave too)."""
        folder = self.autosave_dir.text().strip()
        size = autosaves.folder_size(folder) if folder else None
        self.autosave_size.setText(f"In the folder now: {size.describe()}" if size else "")

    def _unit_changed(self) -> None:
        spin = self._spins["duration"]
        unit = self.unit.currentText()
        s = settings(TrainConfig)[unit][0]
        assert isinstance(spin, QDoubleSpinBox)
        spin.setDecimals(0 if s.kind is int else 2)
        spin.setRange(float(s.lo), float(s.hi))  # type: ignore[arg-type]
        spin.setSingleStep(DURATION_STEPS[unit])
        self._edited()

    def set_devices(self, report: Any) -> None:
        """List the CPU and each usable GPU of a ``charlstm_core.engine.devices.DeviceReport``
        (None: still
        looking); when none is usable, a disabled entry whose tooltip is the reason."""
        wanted = self._wanted_device
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItem("CPU", "cpu")
        gpus = report.gpus if report is not None and report.usable else ()
        for g in gpus:
            self.device.addItem(g.label, f"gpu:{g.index}")
        if not gpus:
            why = "Looking for GPUs…" if report is None else f"No usable GPU: {report.reason}"
            self.device.addItem("GPU — looking…" if report is None else "GPU — not usable", "")
            self.device.model().item(1).setEnabled(False)
            self.device.setItemData(1, why, Qt.ItemDataRole.ToolTipRole)
        self.device.setToolTip(
            "Where training runs: the CPU, or an NVIDIA GPU through CuPy."
            + ("" if gpus or report is None else f"\n{why}.")
        )
        pick = "gpu:0" if wanted in ("auto", "gpu") and gpus else wanted
        self.device.setCurrentIndex(max(0, self.device.findData(pick)))
        self.device.blockSignals(False)
        self._wanted_device = self.device_choice() if gpus else wanted
        self._device_changed()

    def device_choice(self) -> str:
        """The chosen device, "cpu" or "gpu:N" (what ``charlstm_core.engine.devices.resolve_device``
        takes)."""
        return self.device.currentData() or "cpu"

    def _device_changed(self, *_: Any) -> None:
        on_gpu = self.device_choice() != "cpu"
        if self.device.count() > 1 and self.device.model().item(1).isEnabled():
            self._wanted_device = self.device_choice()
        for name in GPU_PRESETS:
            i = self.preset.findText(name)
            self.preset.model().item(i).setEnabled(on_gpu)
        self.changed.emit()

    def _preset_chosen(self, index: int) -> None:
        name = self.preset.itemText(index)
        if name in PRESETS:
            self.set_values(PRESETS[name])
            self.preset.setCurrentText(name)
            self.changed.emit()

    def _edited(self, *_: Any) -> None:
        if self._updating:
            return
        current = self.values()
        match = next(
            (n for n, p in PRESETS.items() if all(current.get(k) == v for k, v in p.items())),
            "Custom",
        )
        self.preset.setCurrentText(match)
        self.changed.emit()

    # ---------------------------------------------------------------- values
    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: s.value() for k, s in self._spins.items()}
        out["duration_unit"] = self.unit.currentText()
        if out["duration_unit"] == "steps":
            out["duration"] = int(round(out["duration"]))
        out.update({k: c.currentData() for k, c in self._combos.items()})
        out["autosave_dir"] = self.autosave_dir.text().strip()
        out["device"] = self._wanted_device
        out["autosave_keep"] = self.autosave_keep.value()
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        self._updating = True
        try:
            if "duration_unit" in values and values["duration_unit"] in DURATION_UNITS:
                self.unit.setCurrentText(values["duration_unit"])
                self._unit_changed()
            for key, value in values.items():
                spin = self._spins.get(key)
                if spin is not None and value is not None:
                    spin.setValue(float(value) if isinstance(spin, QDoubleSpinBox) else int(value))
                combo = self._combos.get(key)
                if combo is not None and combo.findData(value) >= 0:
                    combo.setCurrentIndex(combo.findData(value))
            if "autosave_dir" in values:
                self.autosave_dir.setText(str(values["autosave_dir"]))
                self.show_autosave_size()
            if "autosave_keep" in values:
                self.autosave_keep.setValue(int(values["autosave_keep"]))
            if values.get("device"):  # applied when the devices are known (set_devices)
                self._wanted_device = str(values["device"])
                i = self.device.findData(self._wanted_device)
                if i >= 0 and self.device.model().item(i).isEnabled():
                    self.device.setCurrentIndex(i)
        finally:
            self._updating = False
        self._edited()

    def set_from_configs(self, model: ModelConfig, train: TrainConfig) -> None:
        """Show the settings a model file was trained with."""
        v: dict[str, Any] = {k: getattr(model, k) for k in SHOWN if hasattr(model, k)}
        v.update({k: getattr(train, k) for k in SHOWN if hasattr(train, k)})
        for unit in DURATION_UNITS:
            if getattr(train, unit) is not None:
                v["duration_unit"], v["duration"] = unit, getattr(train, unit)
        self.set_values(v)

    def configs(self, vocab_size: int) -> tuple[ModelConfig, TrainConfig]:
        """The frozen configs of these settings; ``ConfigError`` says what is out of range."""
        v = self.values()
        for key, (s, _) in SHOWN.items():
            if s.kind is float:  # the spin box's value without binary noise (0.1, not 0.1000…1)
                v[key] = round(v[key], WIDGETS[key].decimals + 3)
        model = ModelConfig(
            vocab_size=max(1, vocab_size), **{k: v[k] for k in SHOWN if k in _MODEL_FIELDS}
        )
        duration = {u: None for u in DURATION_UNITS}
        duration[v["duration_unit"]] = v["duration"]
        train = TrainConfig(**{k: v[k] for k in SHOWN if k not in _MODEL_FIELDS}, **duration)
        return model.validate(), train.validate()

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    # ---------------------------------------------------------------- QSettings
    def save_settings(self, settings: QSettings) -> None:
        for key, value in self.values().items():
            settings.setValue(f"training/{key}", value)
        settings.setValue("training/preset", self.preset.currentText())

    def restore_settings(self, settings: QSettings, default_autosave: str) -> None:
        v: dict[str, Any] = {}
        for key, (s, _) in SHOWN.items():
            v[key] = settings.value(f"training/{key}", DEFAULTS[key], type=s.kind)
        v["duration"] = settings.value("training/duration", DEFAULTS["duration"], type=float)
        v["duration_unit"] = settings.value(
            "training/duration_unit", DEFAULTS["duration_unit"], type=str
        )
        v["autosave_dir"] = settings.value("training/autosave_dir", default_autosave, type=str)
        v["device"] = settings.value("training/device", "auto", type=str)
        v["autosave_keep"] = settings.value(
            "training/autosave_keep", DEFAULTS["autosave_keep"], type=int
        )
        self.set_values(v)


_MODEL_FIELDS = settings(ModelConfig)
