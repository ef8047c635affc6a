"""The Generate tab: prime text, length, temperature, top-k, top-p and seed; text streams in live.

Each field's label, range, default and tooltip come from its ``GenerationConfig`` field
(``charlstm_core.config``), as ``charlstm sample``'s options do; this module keeps only how each is
shown (``WIDGETS``) and where. The panel only collects the settings and shows the text; the
controller decides which model to sample (a snapshot of the one being trained, or the opened one)
and runs it off the GUI thread. The shortest copy (``copy_min``) is the memorisation meter's
(``charlstm_gui.views.meters``), shown under the text it marks.
"""

from __future__ import annotations

from charlstm_core.config import GenerationConfig, settings
from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..widgets.plain import plain
from ..widgets.setting_widgets import Widget, label_text, spin_box

NO_MODEL = "No model yet: train one or open a model file."
FIELDS = settings(GenerationConfig)  # name -> (Setting, default)
# how each setting is shown (its label's Alt+letter avoids Generate, Stop, Copy and Save's)
WIDGETS: dict[str, Widget] = {
    "prime": Widget(),
    "length": Widget(100),
    "temperature": Widget(0.1, 2, shortcut="e"),
    "top_k": Widget(1, special="off", shortcut="k"),
    "top_p": Widget(0.05, 2, shortcut="o"),
    "seed": Widget(1, shortcut="d"),
    "copies_min": Widget(1, show_unit=True, shortcut="y"),
}
ROW = ("length", "temperature", "top_k", "top_p")  # the spin boxes on the line under the prime


class GeneratePanel(QWidget):
    generate_requested = Signal(object)  # GenerationConfig
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels: dict[str, QLabel] = {}  # each setting's label, by field name
        s, default = FIELDS["prime"]
        self.prime = QLineEdit(default)
        self.prime.setPlaceholderText('optional: text the model continues, e.g. "def main("')
        self.prime.setToolTip(s.help)
        self._label("prime", self.prime)
        self.spins = {name: self._spin(name) for name in (*ROW, "seed", "copies_min")}
        self.length, self.temperature = self.spins["length"], self.spins["temperature"]
        self.top_k, self.top_p = self.spins["top_k"], self.spins["top_p"]
        self.seed, self.copy_min = self.spins["seed"], self.spins["copies_min"]
        s, default = FIELDS["seed"]
        self.random_seed = QCheckBox(s.none)  # ticked: None, a fresh seed each time
        self.random_seed.setToolTip(
            "A different text every time. Untick to use the seed on the left and get "
            "reproducible text."
        )
        self.random_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))
        self.random_seed.setChecked(default is None)
        self.seed.setEnabled(default is not None)

        self._source = ""  # the model named by the label
        self.source = plain(QLabel(NO_MODEL))  # names the model file
        self.source.setWordWrap(True)
        self.go = QPushButton("&Generate")
        self.go.setToolTip("Write text with the current model (Ctrl+G).")
        self.stop = QPushButton("S&top")
        self.stop.setToolTip("Stop writing (Ctrl+Shift+G).")
        self.stop.setEnabled(False)
        self.copy = QPushButton("&Copy")
        self.copy.setToolTip("Copy the generated text to the clipboard.")
        self.save = QPushButton("Save as .t&xt…")
        self.save.setToolTip("Save the generated text to a text file.")
        self.go.clicked.connect(self.request)
        self.stop.clicked.connect(self.cancel_requested)
        self.copy.clicked.connect(self.copy_all)

        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.output.setPlaceholderText("Generated text appears here as it is written.")
        self.meter = QLabel("")  # the memorisation meter (charlstm_gui.views.meters) writes here
        self.meter.setWordWrap(True)

        form = QFormLayout()
        form.addRow(self.labels["prime"], self.prime)
        row = QHBoxLayout()
        for name in ROW:
            row.addWidget(self.labels[name])
            row.addWidget(self.spins[name])
        row.addWidget(self.labels["seed"])
        row.addWidget(self.seed, 1)
        row.addWidget(self.random_seed)
        form.addRow(row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.go)
        buttons.addWidget(self.stop)
        buttons.addWidget(self.source, 1)
        buttons.addWidget(self.copy)
        buttons.addWidget(self.save)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.output, 1)
        meter_row = QHBoxLayout()
        meter_row.addWidget(self.meter, 1)
        meter_row.addWidget(self.labels["copies_min"])
        meter_row.addWidget(self.copy_min)
        lay.addLayout(meter_row)

    def _label(self, name: str, buddy: QWidget) -> QLabel:
        s = FIELDS[name][0]
        label = QLabel(label_text(s, WIDGETS[name]))
        label.setBuddy(buddy)
        label.setToolTip(s.help)
        self.labels[name] = label
        return label

    def _spin(self, name: str) -> QWidget:
        """The field's spin box at its default (the seed's: its lowest, until one is chosen)."""
        s, default = FIELDS[name]
        spin = spin_box(s, WIDGETS[name])
        spin.setValue(s.lo if default is None else default)
        self._label(name, spin)
        return spin

    def request_value(self) -> GenerationConfig:
        """The settings shown, checked against their fields (``ConfigError`` says what is
        wrong)."""
        values = {}
        for name, spin in self.spins.items():
            v = spin.value()
            if isinstance(spin, QDoubleSpinBox):  # without binary noise (0.8, not 0.8000…1)
                v = round(v, spin.decimals() + 3)
            values[name] = v
        if self.random_seed.isChecked():
            values["seed"] = None
        return GenerationConfig(prime=self.prime.text(), **values).validate()

    def request(self) -> None:
        self.generate_requested.emit(self.request_value())

    def started(self, source: str, prime: str) -> None:
        self.output.setPlainText(prime)
        self.source.setText(f"Writing with {source}…")
        self.go.setEnabled(False)
        self.stop.setEnabled(True)

    def append(self, text: str) -> None:
        cursor = self.output.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.output.setTextCursor(cursor)
        self.output.ensureCursorVisible()

    def finished(self, completed: bool) -> None:
        self.source.setText("Done." if completed else "Stopped.")
        self.stop.setEnabled(False)

    def set_can_generate(self, can: bool, source: str = "") -> None:
        """``source`` names the model Generate would use ("" when there is none); while text is
        being written the label keeps saying which model writes it."""
        self.go.setEnabled(can and not self.stop.isEnabled())
        if self.stop.isEnabled() or source == self._source:
            return  # "Done." / "Stopped." stay until another model is the one to use
        self._source = source
        self.source.setText(f"Model: {source}" if source else NO_MODEL)

    def text(self) -> str:
        return self.output.toPlainText()

    def copy_all(self) -> None:
        QApplication.clipboard().setText(self.text())
