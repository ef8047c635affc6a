"""The Text tab: what was loaded (size, characters, encoding, preview) and a check of the settings
against it: parameter count versus text size, memory, and the estimated time per step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

from ..widgets import fmt

if TYPE_CHECKING:  # the engine is imported on first use, so the window opens fast
    from charlstm_core.training.plan import Estimate


class _WrapLabel(QLabel):
    """A word-wrapped label whose minimum height follows its text at its current width.

    QFormLayout does not ask a field for its height-for-width when a label's text changes after
    the layout was made (the estimate arrives seconds after the text), so the rows below would be
    drawn over a grown label; holding the minimum height to ``heightForWidth`` fixes that.
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setTextFormat(Qt.TextFormat.PlainText)  # a text's name and path, advice naming it
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
        self.validation_check = _WrapLabel()
        self.validation_check.setStyleSheet("color: #8a4b00;")
        self.validation_check.hide()
        cform.addRow(self.validation_check)
        self.labels["speed"].setToolTip(
            "Measured here: a few real training steps at these settings and this text's number "
            "of distinct characters, plus the share of each step in the validations and samples "
            "made every so many steps. The status bar shows the real speed once training runs."
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

    def set_split(self, n_chars: int, val_fraction: float, how: str = "last") -> None:
        from charlstm_core.files.text import val_blocks

        n_val = int(n_chars * val_fraction)
        where = ""
        if n_val:
            k = len(val_blocks(n_chars, val_fraction, how))
            where = " (the last part)" if k == 1 else f" ({k} evenly spaced blocks)"
        self.labels["split"].setText(f"{n_chars - n_val:,} / {n_val:,} characters{where}")

    def show_validation_check(self, text: str) -> None:
        """A warning about the validation part (characters training never shows), or none."""
        self.validation_check.setText(text)
        self.validation_check.setVisible(bool(text))

    def show_estimate(
        self,
        est: Estimate,
        train_chars: int,
        run_steps: float | None,
        passes: float | None = None,
        dropout: float = 0.0,
    ) -> None:
        """The check's figures; ``passes``: the run's passes over the training part (epochs);
        ``dropout``: the form's (it tempers the verdict on the model's size)."""
        self.labels["params"].setText(f"{est.params:,}")
        self.labels["ratio"].setText(f"{train_chars / max(est.params, 1):,.2f}")
        self.labels["memory"].setText(
            f"about {fmt.size(est.memory)} (weights, Adam and activations)"
        )
        if est.seconds_per_step is None:
            self.labels["speed"].setText("measuring…")
            self.labels["run"].setText("—")
        else:
            shared = est.seconds_per_step - (est.step_s or est.seconds_per_step)
            extra = (
                f", of which {shared * 1000:,.0f} ms is its share of validation and samples"
                if shared >= 0.0005
                else ""
            )
            self.labels["speed"].setText(
                f"about {fmt.duration_ms(est.seconds_per_step)} (measured here{extra})"
            )
            self.labels["run"].setText(
                "—"
                if run_steps is None
                else f"{run_steps:,.0f} steps ≈ "
                + fmt.duration(run_steps * est.seconds_per_step).replace(" ", "\u00a0")
                + ("" if passes is None else f", {passes:,.1f} passes over the training text")
            )
        from charlstm_core.training.plan import size_advice

        self.verdict.setText(size_advice(est.parts, est.vocab, train_chars, dropout))
