"""The Generate tab: prime text, length, temperature, top-k and seed; text streams in live.

The panel only collects the request and shows the text; the controller decides which model to
sample (a snapshot of the one being trained, or the opened one) and runs it off the GUI thread.
"""

from __future__ import annotations

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
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..controller.generate_request import GenerateRequest
from ..widgets.plain import plain

NO_MODEL = "No model yet: train one or open a model file."


class GeneratePanel(QWidget):
    generate_requested = Signal(object)  # GenerateRequest
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prime = QLineEdit()
        self.prime.setPlaceholderText('optional: text the model continues, e.g. "def main("')
        self.prime.setToolTip(
            "The model first reads this text, then continues it. Every character "
            "must occur in the training text."
        )
        self.length = QSpinBox()
        self.length.setRange(1, 1_000_000)
        self.length.setValue(1000)
        self.length.setSingleStep(100)
        self.length.setGroupSeparatorShown(True)
        self.length.setToolTip("How many characters to write.")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.8)
        self.temperature.setToolTip(
            "Randomness: 0 always takes the likeliest character (safe but "
            "repetitive); 1 follows the model as it is; above 1 gets wild. "
            "0.5–0.8 reads best."
        )
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 100_000)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip(
            "Sample only among the k likeliest characters (0 = off). 5–20 removes "
            "rare typos without making the text repetitive."
        )
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(1)
        self.seed.setToolTip("Same model, settings and seed write the same text.")
        self.random_seed = QCheckBox("random")
        self.random_seed.setChecked(True)
        self.random_seed.setToolTip(
            "A different text every time. Untick to use the seed on the "
            "left and get reproducible text."
        )
        self.random_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))
        self.seed.setEnabled(False)

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
        self.copy_min = QSpinBox()
        self.copy_min.setRange(5, 1000)
        self.copy_min.setValue(20)
        self.copy_min.setSuffix(" chars")
        self.copy_min.setToolTip(
            "Memorisation meter: highlight every span of at least this many characters of "
            "generated text (here and in Samples) that occurs word for word in the training text."
        )

        form = QFormLayout()
        form.addRow("&Prime:", self.prime)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        row = QHBoxLayout()
        for label, w in (
            ("&Length:", self.length),
            ("T&emperature:", self.temperature),
            ("Top-&k:", self.top_k),
        ):
            lab = QLabel(label)
            lab.setBuddy(w)
            row.addWidget(lab)
            row.addWidget(w)
        row.addWidget(QLabel("Seed:"))
        row.addLayout(seed_row)
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
        meter_row.addWidget(QLabel("Copies of ≥"))
        meter_row.addWidget(self.copy_min)
        lay.addLayout(meter_row)

    def request_value(self) -> GenerateRequest:
        return GenerateRequest(
            prime=self.prime.text(),
            length=self.length.value(),
            temperature=self.temperature.value(),
            top_k=self.top_k.value(),
            seed=None if self.random_seed.isChecked() else self.seed.value(),
        )

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
