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


SPEED_TIP = (
    "Measured here, under the load there is: real training steps at these settings and this "
    "text's number of distinct characters, plus the share of each step in the validations and "
    "samples made every so many steps. Measured again when other programs' use of the cores "
    "changes. The status bar shows the run's own speed and time left once training runs."
)


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
        self.busy_note = _WrapLabel()  # the machine is busy: the estimate may change
        self.busy_note.setStyleSheet("color: #8a4b00;")
        self.busy_note.hide()
        cform.addRow(self.busy_note)
        self.validation_check = _WrapLabel()
        self.validation_check.setStyleSheet("color: #8a4b00;")
        self.validation_check.hide()
        cform.addRow(self.validation_check)
        self.labels["speed"].setToolTip(SPEED_TIP)
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
        *,
        steps_estimated: bool = False,
    ) -> None:
        """The check's figures; ``passes``: the run's passes over the training part (epochs);
        ``dropout``: the form's (it tempers the verdict on the model's size);
        ``steps_estimated``: ``run_steps`` is a time budget's estimate, shown as "about N"."""
        from charlstm_core.training import measures

        self.labels["params"].setText(f"{est.params:,}")
        self.labels["ratio"].setText(f"{train_chars / max(est.params, 1):,.2f}")
        self.labels["memory"].setText(
            f"about {fmt.size(est.memory)} (weights, Adam and activations)"
        )
        load = est.load
        busy = load.sentence() if load is not None else ""
        self.busy_note.setText(busy)
        self.busy_note.setVisible(bool(busy) and est.seconds_per_step is not None)
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
            where = "measured here while the machine was busy" if busy else "measured here"
            self.labels["speed"].setText(
                f"about {fmt.duration_ms(est.seconds_per_step)} ({where}{extra})"
            )
            if run_steps is None:
                run = "—"
            else:
                steps = measures.count_text(run_steps, steps_estimated)
                took = fmt.duration(run_steps * est.seconds_per_step)
                run = f"{steps} steps in {took}" if steps_estimated else f"{steps} steps ≈ {took}"
                if passes is not None:
                    run += f", {passes:,.1f} passes over the training text"
            self.labels["run"].setText(run)
        from charlstm_core.training.plan import size_advice

        self.verdict.setText(size_advice(est.parts, est.vocab, train_chars, dropout))
