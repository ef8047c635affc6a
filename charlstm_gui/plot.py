"""The live loss plot: raw training loss (faint), its smoothed curve, and validation loss.

Each self-healing rollback is a dashed red vertical line at the step training returned to; its
tooltip says what happened ("rolled back to step 1,200; learning rate 8e-3 → 4e-3").

Three persistent curves are updated with ``setData`` from a 25 Hz timer, and only when the history
changed; clip-to-view and 'peak' downsampling keep 100,000+ points cheap. The smoothed curve is
computed incrementally (only new points) unless the smoothing changes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from .axes import CountAxis, LossAxis
from .history import LossHistory, ema

REFRESH_MS = 40  # 25 Hz
REFERENCE_COLOURS = ((120, 120, 120), (150, 60, 160), (40, 140, 90), (190, 120, 0), (60, 60, 200))
ROLLBACK_PEN = pg.mkPen((200, 30, 30), width=1.5, style=Qt.PenStyle.DashLine)
ROLLBACK_HOVER_PX = 4  # the pointer this close to a rollback line shows its tooltip


class LossPlot(QWidget):
    """Plots a :class:`LossHistory`; the owner calls ``refresh_now()`` only in tests."""

    log_scale_changed = Signal(bool)
    x_chars_changed = Signal(bool)

    def __init__(self, history: LossHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self._drawn_version = -1
        self._smooth = np.empty(0)
        self._smooth_n = 0
        self._smooth_state = (0.0, 0)
        self._smooth_rewrites = history.rewrites
        self.x_chars = False
        self.references: list[tuple[str, float, str, pg.InfiniteLine]] = []  # label, nats, tip
        self.references_shown = True
        self.rollback_lines: list[pg.InfiniteLine] = []

        pg.setConfigOptions(antialias=False)
        self.widget = pg.PlotWidget(
            background="w",
            axisItems={"bottom": CountAxis("bottom"), "left": LossAxis("left")},
        )
        self.plot = self.widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("left", "loss (nats per character)")
        self.plot.setLabel("bottom", "step")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.raw = self.plot.plot(pen=pg.mkPen((70, 110, 200, 70), width=1), name="train (raw)")
        self.smooth = self.plot.plot(pen=pg.mkPen((30, 70, 180), width=2), name="train (smoothed)")
        self.val = self.plot.plot(
            pen=pg.mkPen((230, 120, 20), width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush=(230, 120, 20),
            symbolPen=None,
            name="validation",
        )
        for curve in (self.raw, self.smooth):
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
        self.cursor_label = QLabel(" ")
        self.cursor_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cursor_label.setToolTip("Values under the mouse pointer.")
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((120, 120, 120, 120)))
        self.plot.addItem(self.vline, ignoreBounds=True)
        self.vline.hide()
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 999)
        self.smoothing.setValue(900)
        self.smoothing.setToolTip(
            "How strongly the dark curve smooths the noisy training loss "
            "(exponential moving average). Slide right for long runs."
        )
        self.smoothing_label = QLabel()
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.log_box = QCheckBox("&Log scale")
        self.log_box.setToolTip("Logarithmic loss axis: shows the slow late improvements better.")
        self.log_box.toggled.connect(self.set_log_scale)
        self.chars_box = QCheckBox("x: &characters seen")
        self.chars_box.setToolTip(
            "Plot against training characters consumed instead of steps, to "
            "compare runs with different batch sizes or sequence lengths."
        )
        self.chars_box.toggled.connect(self.set_x_chars)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Smoothing:"))
        bar.addWidget(self.smoothing, 1)
        bar.addWidget(self.smoothing_label)
        bar.addSpacing(12)
        bar.addWidget(self.log_box)
        bar.addWidget(self.chars_box)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.widget, 1)
        lay.addWidget(self.cursor_label)
        lay.addLayout(bar)
        self._smoothing_changed(self.smoothing.value())

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # ---------------------------------------------------------------- options
    @property
    def smoothing_value(self) -> float:
        return self.smoothing.value() / 1000

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 1000:.3f}")
        self._smooth_n = 0  # recompute the whole smoothed curve on the next refresh
        self._smooth_state = (0.0, 0)
        self._drawn_version = -1

    def set_log_scale(self, on: bool) -> None:
        if self.log_box.isChecked() != on:
            self.log_box.setChecked(on)
            return
        self.plot.setLogMode(y=on)
        self._place_references()
        self._drawn_version = -1
        self.log_scale_changed.emit(on)

    def set_x_chars(self, on: bool) -> None:
        if self.chars_box.isChecked() != on:
            self.chars_box.setChecked(on)
            return
        self.x_chars = on
        self.plot.setLabel("bottom", "characters seen" if on else "step")
        self._drawn_version = -1
        self.plot.enableAutoRange()
        self.x_chars_changed.emit(on)

    # ---------------------------------------------------------------- reference lines
    def set_references(self, lines: list[tuple[str, float, str]]) -> None:
        """Horizontal yardsticks, each (label, nats per character, tooltip): what gzip, bz2 and
        xz reach on the validation text, and the training text's unigram and bigram entropies.
        Shown, they count in the auto-range, so the user sees the curve reach them."""
        for *_, item in self.references:
            self.plot.removeItem(item)
        self.references = []
        for i, (label, nats, tip) in enumerate(lines):
            colour = REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)]
            item = pg.InfiniteLine(
                angle=0,
                movable=False,
                pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine),
                label=f"{label} {nats:.3f}",
                labelOpts={"position": 0.03 + 0.12 * i, "color": colour, "anchors": [(0, 1)] * 2},
            )
            item.setToolTip(tip)
            item.label.setToolTip(tip)
            item.setVisible(self.references_shown)
            self.plot.addItem(item)
            self.references.append((label, nats, tip, item))
        self._place_references()

    def show_references(self, on: bool) -> None:
        self.references_shown = on
        for *_, item in self.references:
            item.setVisible(on)
        self.plot.vb.updateAutoRange()

    def _place_references(self) -> None:
        log = self.log_box.isChecked()
        for _, nats, _, item in self.references:
            item.setPos(np.log10(nats) if log and nats > 0 else nats)

    # ---------------------------------------------------------------- drawing
    def smoothed(self) -> np.ndarray:
        """The smoothed training loss for every recorded step (computed incrementally)."""
        loss = self.history.train.loss
        if self._smooth_n > loss.shape[0] or self._smooth_rewrites != self.history.rewrites:
            # history was cleared or rolled back: its rows are not those smoothed so far
            self._smooth_n, self._smooth_state = 0, (0.0, 0)
            self._smooth_rewrites = self.history.rewrites
        self._smooth, self._smooth_state = ema(
            loss, self.smoothing_value, self._smooth_n, self._smooth, self._smooth_state
        )
        self._smooth_n = loss.shape[0]
        return self._smooth[: self._smooth_n]

    def refresh(self) -> None:
        """Redraw if the history changed since the last redraw (called by the 25 Hz timer)."""
        if self.history.version == self._drawn_version:
            return
        self._drawn_version = self.history.version
        h = self.history
        x_train = h.train.chars if self.x_chars else h.train.step
        x_val = h.val.chars if self.x_chars else h.val.step
        smooth = self.smoothed()
        log = self.log_box.isChecked()
        if log:  # log axes cannot show zero or negative losses
            x_train, train_loss, smooth = _positive(x_train, h.train.loss, smooth)
            x_val, val_loss = _positive(x_val, h.val.loss)
        else:
            train_loss, val_loss = h.train.loss, h.val.loss
        self.raw.setData(x_train, train_loss)
        self.smooth.setData(x_train, smooth)
        self.val.setData(x_val, val_loss)
        self._draw_rollbacks()

    def _draw_rollbacks(self) -> None:
        """One vertical line per rollback, at the step (or characters) training returned to."""
        marks = self.history.rollbacks
        while len(self.rollback_lines) > len(marks):
            self.plot.removeItem(self.rollback_lines.pop())
        while len(self.rollback_lines) < len(marks):
            line = pg.InfiniteLine(angle=90, movable=False, pen=ROLLBACK_PEN)
            self.plot.addItem(line, ignoreBounds=True)
            self.rollback_lines.append(line)
        for line, (step, chars, event) in zip(self.rollback_lines, marks, strict=True):
            line.setPos(chars if self.x_chars else step)
            line.setToolTip(rollback_tooltip(event))

    def refresh_now(self) -> None:
        self._drawn_version = -1
        self.refresh()

    def _mouse_moved(self, pos) -> None:
        if not self.plot.sceneBoundingRect().contains(pos) or self.history.train.n == 0:
            return
        x = self.plot.vb.mapSceneToView(pos).x()
        h = self.history
        xs = h.train.chars if self.x_chars else h.train.step
        i = int(np.clip(np.searchsorted(xs, x), 0, h.train.n - 1))
        if i > 0 and abs(xs[i - 1] - x) < abs(xs[i] - x):
            i -= 1
        smooth = self.smoothed()
        text = (
            f"step {int(h.train.step[i]):,} · {int(h.train.chars[i]):,} chars · "
            f"train {h.train.loss[i]:.4f} · smoothed {smooth[i]:.4f}"
        )
        if h.val.n:
            vx = h.val.chars if self.x_chars else h.val.step
            j = int(np.argmin(np.abs(vx - x)))
            text += f" · validation {h.val.loss[j]:.4f} (step {int(h.val.step[j]):,})"
        line = self.rollback_line_at(pos)
        if line is not None:
            text += " · " + line.toolTip().splitlines()[0]
            where = self.widget.viewport().mapToGlobal(self.widget.mapFromScene(pos))
            QToolTip.showText(where, line.toolTip(), self.widget)
        self.cursor_label.setText(text)
        self.vline.setPos(xs[i])
        self.vline.show()

    def rollback_line_at(self, scene_pos) -> pg.InfiniteLine | None:
        """The rollback line within ROLLBACK_HOVER_PX pixels of a scene position, if any (a
        1-pixel line is hard to hit, and pyqtgraph shows no item tooltips by itself)."""
        for line in self.rollback_lines:
            x = self.plot.vb.mapViewToScene(QPointF(line.value(), 0)).x()
            if abs(x - scene_pos.x()) <= ROLLBACK_HOVER_PX:
                return line
        return None

    def save_png(self, path: str) -> bool:
        return self.widget.grab().save(path, "PNG")


def _positive(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    keep = np.ones(x.shape[0], dtype=bool)
    for y in ys:
        keep &= np.isfinite(y) & (y > 0)
    return (x[keep], *(y[keep] for y in ys))


def rollback_tooltip(event) -> str:
    """'rolled back to step 1,200; learning rate 8e-3 → 4e-3', then why, on a second line."""
    return f"{event.describe()}\nTraining blew up at step {event.from_step:,}: {event.reason}."
