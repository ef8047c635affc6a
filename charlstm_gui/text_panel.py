"""The Text tab: what was loaded (size, characters, encoding, preview) and a check of the settings
against it: parameter count versus text size, memory, and the estimated time per step.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from . import fmt
from .estimate import Estimate


def verdict(params: int, train_chars: int) -> str:
    """A plain-language judgement of model size against the amount of training text."""
    if train_chars <= 0:
        return ""
    ratio = train_chars / max(params, 1)
    if ratio < 0.5:
        return (
            "The model has far more parameters than the text has characters: it will memorise "
            "the text rather than learn to write. Use a smaller hidden size or more text, or "
            "raise dropout."
        )
    if ratio < 2:
        return (
            "Parameters and characters are of the same order: expect overfitting after a few "
            "epochs — watch the validation loss and stop when it turns up."
        )
    if ratio > 200:
        return (
            "The text is large for this model: it will keep improving for a long time; a "
            "bigger hidden size would learn more if you can afford the time."
        )
    return "A good match of model size and text size."


class _WrapLabel(QLabel):
    """A word-wrapped label whose minimum height follows its text at its current width.

    QFormLayout does not ask a field for its height-for-width when a label's text changes after
    the layout was made (the estimate arrives seconds after the text), so the rows below would be
    drawn over a grown label; holding the minimum height to ``heightForWidth`` fixes that.
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setWordWrap(True)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        h = self.heightForWidth(max(self.width(), 1))
        if h > 0 and h != self.minimumHeight():
            self.setMinimumHeight(h)


class TextPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        info = QGroupBox("Loaded text")
        form = QFormLayout(info)
        self.labels: dict[str, QLabel] = {}
        for key, title in (
            ("name", "Text"),
            ("size", "Size"),
            ("chars", "Characters"),
            ("distinct", "Distinct characters"),
            ("encoding", "Encoding"),
            ("split", "Training / validation"),
        ):
            lab = _WrapLabel("—")
            lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.labels[key] = lab
            form.addRow(title + ":", lab)
        check = QGroupBox("Settings versus this text")
        cform = QFormLayout(check)
        for key, title in (
            ("params", "Parameters"),
            ("ratio", "Characters per parameter"),
            ("memory", "Estimated memory"),
            ("speed", "Estimated time per step"),
            ("run", "Estimated run"),
        ):
            lab = _WrapLabel("—")
            self.labels[key] = lab
            cform.addRow(title + ":", lab)
        self.verdict = _WrapLabel()
        cform.addRow(self.verdict)
        self.labels["speed"].setToolTip(
            "Estimated from the floating-point work of one step divided by the speed of a short "
            "real training step (one layer, a 16-character window) timed on this machine. The "
            "status bar shows the measured speed once training runs."
        )
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setPlaceholderText("The beginning of the text appears here.")
        self.preview.setToolTip("The first 2,000 characters of the text.")
        left = QWidget()
        col = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(info)
        col.addWidget(check)
        col.addStretch(1)
        # In a short dock the wrapped labels would be squeezed on top of each other: scroll instead.
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        lay = QHBoxLayout(self)
        lay.addWidget(scroll, 2)
        lay.addWidget(self.preview, 3)

    def show_corpus(self, corpus: Any, val_fraction: float) -> None:
        self.labels["name"].setText(
            corpus.name if corpus.path is None else f"{corpus.name}  ({corpus.path})"
        )
        self.labels["size"].setText(fmt.size(corpus.n_bytes))
        self.labels["chars"].setText(f"{corpus.n_chars:,}")
        self.labels["distinct"].setText(f"{corpus.vocab.size:,}")
        self.labels["encoding"].setText(corpus.encoding)
        self.set_split(corpus.n_chars, val_fraction)
        self.preview.setPlainText(corpus.preview(2000))

    def set_split(self, n_chars: int, val_fraction: float) -> None:
        n_val = int(n_chars * val_fraction)
        self.labels["split"].setText(f"{n_chars - n_val:,} / {n_val:,} characters")

    def show_estimate(self, est: Estimate, train_chars: int, run_steps: float | None) -> None:
        self.labels["params"].setText(f"{est.params:,}")
        self.labels["ratio"].setText(f"{train_chars / max(est.params, 1):,.2f}")
        self.labels["memory"].setText(
            f"about {fmt.size(est.memory)} (weights, Adam and activations)"
        )
        if est.seconds_per_step is None:
            self.labels["speed"].setText("measuring…")
            self.labels["run"].setText("—")
        else:
            self.labels["speed"].setText(
                f"about {est.seconds_per_step * 1000:,.0f} ms "
                f"(a real training step ran here at {est.gflops:,.1f} GFLOP/s)"
            )
            self.labels["run"].setText(
                "—"
                if run_steps is None
                else f"{run_steps:,.0f} steps ≈ {fmt.duration(run_steps * est.seconds_per_step)}"
            )
        self.verdict.setText(verdict(est.params, train_chars))
