"""The settings form: model size, training, duration, monitoring and autosave, with presets.

Every field has a tooltip saying what it does and when to change it. Ranges come from the limits of
``core.config``; ``configs()`` builds the frozen configs and lets their ``validate()`` speak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

from core.config import ModelConfig, TrainConfig

from . import autosaves
from .presets import GPU_PRESETS, PRESET_TIPS, PRESETS, START


class _WheelOnlyWhenFocused:
    """A field that ignores the mouse wheel until it is clicked or tabbed into, so scrolling
    the settings panel never changes a value the pointer happens to pass over."""

    def _init_focus(self) -> None:
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # type: ignore[attr-defined]

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()  # the scroll area gets it


class SpinBox(_WheelOnlyWhenFocused, QSpinBox):
    def __init__(self) -> None:
        super().__init__()
        self._init_focus()


class DoubleSpinBox(_WheelOnlyWhenFocused, QDoubleSpinBox):
    def __init__(self) -> None:
        super().__init__()
        self._init_focus()


class Combo(_WheelOnlyWhenFocused, QComboBox):
    def __init__(self) -> None:
        super().__init__()
        self._init_focus()


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    lo: float
    hi: float
    decimals: int  # -1: integer spin box
    step: float
    tip: str
    group: str


FIELDS: tuple[Field, ...] = (
    Field(
        "hidden_size",
        "Hidden size",
        8,
        2048,
        -1,
        32,
        "Memory cells per LSTM layer (H). Bigger "
        "learns more detail but is slower (time grows ~H²) and overfits small texts. 128 for a "
        "quick look, 256–512 for a few MB of text.",
        "Model",
    ),
    Field(
        "num_layers",
        "Layers",
        1,
        4,
        -1,
        1,
        "Stacked LSTM layers (L). Two layers learn longer "
        "structure than one at the same speed cost as doubling H; more than 3 rarely helps.",
        "Model",
    ),
    Field(
        "dropout",
        "Dropout",
        0,
        0.9,
        2,
        0.05,
        "Fraction of activations zeroed while training, "
        "between layers and before the output. Raise it (0.2–0.5) when validation loss rises "
        "while training loss keeps falling (overfitting); 0 for tiny or short runs.",
        "Model",
    ),
    Field(
        "seq_len",
        "Sequence length",
        1,
        10_000,
        -1,
        10,
        "Characters the network is "
        "back-propagated through at once (T). Longer captures longer patterns but costs more "
        "memory per step; 50–200 is typical.",
        "Training",
    ),
    Field(
        "batch_size",
        "Batch size",
        1,
        4096,
        -1,
        8,
        "Parallel streams through the text (B). Bigger "
        "batches give smoother gradients and use the CPU better per character, but each step "
        "takes longer. Lower it if memory is short.",
        "Training",
    ),
    Field(
        "lr",
        "Learning rate",
        1e-7,
        1.0,
        5,
        0.0005,
        "Adam's step size. 0.002 suits most runs. "
        "Lower it (÷2–5) if the loss jumps up or training diverges; raise it slightly if the loss "
        "falls very slowly.",
        "Training",
    ),
    Field(
        "warmup_steps",
        "Warm-up steps",
        0,
        1_000_000,
        -1,
        50,
        "Steps over which the learning "
        "rate ramps up from zero before the cosine decay. Helps big models start stably.",
        "Training",
    ),
    Field(
        "clip",
        "Gradient clip",
        0,
        1000,
        2,
        0.5,
        "Largest allowed gradient norm; bigger "
        "gradients are scaled down. Keeps LSTMs from exploding. 5 is safe; 0 turns it off.",
        "Training",
    ),
    Field(
        "val_fraction",
        "Validation fraction",
        0,
        0.5,
        3,
        0.01,
        "The part of the text kept aside "
        "to measure how well the model generalises (validation loss). 0.05–0.1 is usual; "
        "0 disables validation.",
        "Training",
    ),
    Field(
        "seed",
        "Seed",
        0,
        2**31 - 1,
        -1,
        1,
        "Random seed: same text, settings and seed give "
        "exactly the same model. Change it to try another random start.",
        "Training",
    ),
    Field(
        "duration",
        "Train for",
        0.001,
        1e7,
        2,
        100,
        "How long to train, in the unit chosen on the "
        "right: optimizer steps, passes over the text (epochs), or minutes of wall-clock time.",
        "Duration",
    ),
    Field(
        "eval_every",
        "Validate every",
        0,
        1_000_000_000,
        -1,
        50,
        "Steps between validation-loss "
        "measurements (the orange points). Lower shows the curve in more detail but costs time "
        "on big texts; 0 validates only at the end.",
        "Monitoring",
    ),
    Field(
        "sample_every",
        "Sample every",
        0,
        1_000_000_000,
        -1,
        50,
        "Steps between the text samples written into the Samples tab. 0 writes none.",
        "Monitoring",
    ),
    Field(
        "sample_length",
        "Sample length",
        1,
        100_000,
        -1,
        50,
        "Characters in each training sample.",
        "Monitoring",
    ),
    Field(
        "sample_temperature",
        "Sample temperature",
        0,
        10,
        2,
        0.1,
        "Randomness of training "
        "samples: 0 always picks the likeliest character (repetitive), 1 samples the model as it "
        "is, 0.5–0.8 reads best.",
        "Monitoring",
    ),
    Field(
        "checkpoint_every",
        "Autosave every",
        0,
        1_000_000_000,
        -1,
        100,
        "Steps between "
        "automatic checkpoints in the autosave folder (one is also written when training "
        "stops). 0: only when training stops.",
        "Monitoring",
    ),
)

DURATION_UNITS = ("steps", "epochs", "minutes")
# TrainConfig.on_divergence values and how the form names them
ON_DIVERGENCE_NAMES = {"heal": "heal and continue", "stop": "stop"}
# TrainConfig.val_split values and how the form names them
VAL_SPLIT_NAMES = {"last": "the last part", "blocks": "evenly spaced blocks"}

DEFAULTS: dict[str, Any] = dict(
    PRESETS[START],
    clip=5.0,
    val_fraction=0.1,
    val_split="last",
    on_divergence="heal",
    seed=1234,
    sample_temperature=0.8,
    checkpoint_every=1000,
    lr_schedule="cosine",
    autosave_keep=autosaves.DEFAULT_KEEP,
)


class SettingsForm(QWidget):
    """All training settings; ``changed`` fires on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self._updating = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)

        row = QHBoxLayout()
        row.addWidget(QLabel("&Preset:"))
        self.preset = Combo()
        self.preset.addItems([*PRESETS, "Custom"])
        for i, name in enumerate(PRESETS):
            self.preset.setItemData(i, PRESET_TIPS[name], Qt.ItemDataRole.ToolTipRole)
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

        forms: dict[str, QFormLayout] = {}
        for group in ("Model", "Training", "Duration", "Monitoring"):
            box = QGroupBox(group)
            forms[group] = QFormLayout(box)
            forms[group].setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            outer.addWidget(box)
        for f in FIELDS:
            spin = self._make_spin(f)
            self._spins[f.key] = spin
            if f.key == "duration":
                self.unit = Combo()
                self.unit.addItems(DURATION_UNITS)
                self.unit.setToolTip(
                    "Count the run in optimizer steps, passes over the training "
                    "text (epochs) or minutes."
                )
                self.unit.currentIndexChanged.connect(self._unit_changed)
                line = QHBoxLayout()
                line.addWidget(spin, 1)
                line.addWidget(self.unit)
                forms[f.group].addRow(f.label + ":", line)
            else:
                forms[f.group].addRow(f"&{f.label}:", spin)
            label = forms[f.group].labelForField(spin if f.key != "duration" else line)
            if isinstance(label, QLabel):
                label.setToolTip(f.tip)
            if f.key == "lr":
                self.schedule = Combo()
                self.schedule.addItems(["cosine", "constant"])
                self.schedule.setToolTip(
                    "cosine: warm up, then decay the learning rate to 10% by "
                    "the end (best results). constant: keep it fixed "
                    "(useful for open-ended runs)."
                )
                self.schedule.currentIndexChanged.connect(self._edited)
                forms[f.group].addRow("LR &schedule:", self.schedule)
            if f.key == "val_fraction":
                self.val_split = Combo()
                for key, name in VAL_SPLIT_NAMES.items():
                    self.val_split.addItem(name, key)
                self.val_split.setToolTip(
                    "Where the validation characters come from. The last part is the usual "
                    "choice; evenly spaced blocks (ten, one at the end of each tenth of the "
                    "text) suit a text whose end differs from the rest — say, poetry after "
                    "prose — so validation measures what the model is trained on."
                )
                self.val_split.currentIndexChanged.connect(self._edited)
                forms[f.group].addRow("Validate &on:", self.val_split)
            if f.key == "clip":
                self.on_divergence = Combo()
                for key, name in ON_DIVERGENCE_NAMES.items():
                    self.on_divergence.addItem(name, key)
                self.on_divergence.setToolTip(
                    "What to do when training blows up (the loss far above its recent level and "
                    "above a uniform guess, or infinite). Heal: go back to the last good "
                    "weights, halve the learning rate and continue (marked on the loss plot); "
                    "after 3 blow-ups close together it stops. Stop: stop at once with the "
                    "last good weights."
                )
                self.on_divergence.currentIndexChanged.connect(self._edited)
                forms[f.group].addRow("If training blows &up:", self.on_divergence)

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
    def _make_spin(self, f: Field) -> QSpinBox | QDoubleSpinBox:
        if f.decimals < 0:
            spin: QSpinBox | QDoubleSpinBox = SpinBox()
            spin.setRange(int(f.lo), int(f.hi))
            spin.setSingleStep(int(f.step))
            spin.setGroupSeparatorShown(True)
        else:
            spin = DoubleSpinBox()
            spin.setDecimals(f.decimals)
            spin.setRange(f.lo, f.hi)
            spin.setSingleStep(f.step)
        if f.key in ("eval_every", "sample_every", "checkpoint_every"):
            spin.setSuffix(" steps")
            spin.setSpecialValueText("never" if f.key == "sample_every" else "at the end")
        spin.setToolTip(f.tip)
        spin.setAccelerated(True)
        spin.setKeyboardTracking(False)
        spin.valueChanged.connect(self._edited)
        return spin

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
        assert isinstance(spin, QDoubleSpinBox)
        spin.setDecimals(0 if unit == "steps" else 2)
        spin.setSingleStep({"steps": 100, "epochs": 0.5, "minutes": 5}[unit])
        self._edited()

    def set_devices(self, report: Any) -> None:
        """List the CPU and each usable GPU of a ``core.backend.DeviceReport`` (None: still
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
        """The chosen device, "cpu" or "gpu:N" (what ``core.backend.resolve_device`` takes)."""
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
        out["lr_schedule"] = self.schedule.currentText()
        out["val_split"] = self.val_split.currentData()
        out["on_divergence"] = self.on_divergence.currentData()
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
                    spin.setValue(int(value) if isinstance(spin, QSpinBox) else float(value))
            if values.get("lr_schedule") in ("cosine", "constant"):
                self.schedule.setCurrentText(values["lr_schedule"])
            if values.get("val_split") in VAL_SPLIT_NAMES:
                self.val_split.setCurrentIndex(self.val_split.findData(values["val_split"]))
            if values.get("on_divergence") in ON_DIVERGENCE_NAMES:
                index = self.on_divergence.findData(values["on_divergence"])
                self.on_divergence.setCurrentIndex(index)
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
        v: dict[str, Any] = {k: getattr(model, k) for k in ("hidden_size", "num_layers", "dropout")}
        v.update({f.key: getattr(train, f.key) for f in FIELDS if hasattr(train, f.key)})
        v["lr_schedule"] = train.lr_schedule
        v["val_split"] = train.val_split
        v["on_divergence"] = train.on_divergence
        for unit in DURATION_UNITS:
            if getattr(train, unit) is not None:
                v["duration_unit"], v["duration"] = unit, getattr(train, unit)
        self.set_values(v)

    def configs(self, vocab_size: int) -> tuple[ModelConfig, TrainConfig]:
        """The frozen configs of these settings; ``ConfigError`` says what is out of range."""
        v = self.values()
        model = ModelConfig(
            vocab_size=max(1, vocab_size),
            hidden_size=v["hidden_size"],
            num_layers=v["num_layers"],
            dropout=round(v["dropout"], 4),
        )
        duration = {u: None for u in DURATION_UNITS}
        duration[v["duration_unit"]] = v["duration"]
        train = TrainConfig(
            seq_len=v["seq_len"],
            batch_size=v["batch_size"],
            lr=v["lr"],
            lr_schedule=v["lr_schedule"],
            warmup_steps=v["warmup_steps"],
            clip=v["clip"],
            val_fraction=round(v["val_fraction"], 6),
            val_split=v["val_split"],
            on_divergence=v["on_divergence"],
            eval_every=v["eval_every"],
            sample_every=v["sample_every"],
            sample_length=v["sample_length"],
            sample_temperature=v["sample_temperature"],
            checkpoint_every=v["checkpoint_every"],
            seed=v["seed"],
            steps=duration["steps"],
            epochs=duration["epochs"],
            minutes=duration["minutes"],
        )
        return model.validate(), train.validate()

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def set_model_locked(self, locked: bool, why: str = "") -> None:
        """While continuing a checkpoint its architecture cannot change."""
        for key in ("hidden_size", "num_layers"):
            self._spins[key].setEnabled(not locked)
            self._spins[key].setToolTip(
                why if locked else next(f.tip for f in FIELDS if f.key == key)
            )

    # ---------------------------------------------------------------- QSettings
    def save_settings(self, settings: QSettings) -> None:
        for key, value in self.values().items():
            settings.setValue(f"training/{key}", value)
        settings.setValue("training/preset", self.preset.currentText())

    def restore_settings(self, settings: QSettings, default_autosave: str) -> None:
        v: dict[str, Any] = {}
        for f in FIELDS:
            kind = float if f.decimals >= 0 or f.key == "duration" else int
            default = DEFAULTS.get(f.key, self._spins[f.key].value())
            v[f.key] = settings.value(f"training/{f.key}", default, type=kind)
        v["duration_unit"] = settings.value(
            "training/duration_unit", DEFAULTS["duration_unit"], type=str
        )
        v["lr_schedule"] = settings.value("training/lr_schedule", "cosine", type=str)
        v["val_split"] = settings.value("training/val_split", DEFAULTS["val_split"], type=str)
        v["on_divergence"] = settings.value(
            "training/on_divergence", DEFAULTS["on_divergence"], type=str
        )
        v["autosave_dir"] = settings.value("training/autosave_dir", default_autosave, type=str)
        v["device"] = settings.value("training/device", "auto", type=str)
        v["autosave_keep"] = settings.value(
            "training/autosave_keep", autosaves.DEFAULT_KEEP, type=int
        )
        self.set_values(v)
