"""The live loss plot: raw training loss (faint), its smoothed curve, and validation loss.

Each self-healing rollback is a dashed red vertical line at the step training returned to; its
tooltip says what happened ("rolled back to step 1,200; learning rate 8e-3 → 4e-3").

Three persistent curves are updated with ``setData`` from a timer, and only when the history
changed; clip-to-view and 'peak' downsampling keep 100,000+ points cheap. The smoothed curve is
computed incrementally (only new points) unless the smoothing changes.

Watching must not cost the training (the GUI thread paints in Python, under the GIL, on cores
the training needs whole). While a run is live (``set_live``) the plot looks for new points
``LIVE_HZ`` times a second instead of 25 (each look wakes the GUI thread, which then
needs the GIL), draws the validation points and rollback lines only when theirs changed, and
grows the view in steps (``axes.SteppedViewBox``) instead of fitting every new point, which
would re-lay out the axes, grid and reference labels on every frame; a change the user makes
(smoothing, log scale, x axis) is drawn at once. ``benchmarks/bench_app_vs_cli.py``
measures the GUI thread's share of a core and the app's steps against the command line's.

Runs ticked in the Runs panel are overlaid as fixed curves, one colour each, named in the legend.
Their curves are cut to at most ``OVERLAY_POINTS`` bucket means when they arrive (10 runs of
100,000 steps would otherwise mean 1M points redrawn on every pan); the means are smoothed with
the bucket-equivalent EMA weight ``a**k``. ``benchmarks/bench_runs_gui.py`` measures it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QSlider,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from ..controller.history import LossHistory, ema
from ..widgets.axes import CountAxis, LossAxis, SteppedViewBox
from ..widgets.throttle import LIVE_HZ

REFRESH_MS = 40  # how often the plot looks for changes: 25 Hz, and while a run is live LIVE_HZ
REFERENCE_COLOURS = ((120, 120, 120), (150, 60, 160), (40, 140, 90), (190, 120, 0), (60, 60, 200))
ROLLBACK_PEN = pg.mkPen((200, 30, 30), width=1.5, style=Qt.PenStyle.DashLine)
ROLLBACK_HOVER_PX = 4  # the pointer this close to a rollback line shows its tooltip
X_AXES = {"step": "step", "chars": "characters seen", "time": "training time (s)"}
OVERLAY_POINTS = 1500  # most points drawn per overlaid curve
# overlay colours: distinct from the live run's blue and orange (Tableau / Okabe-Ito hues)
OVERLAY_COLOURS = (
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
    (0, 0, 0),
    (0, 114, 178),
)


@dataclass(frozen=True)
class OverlayCurve:
    """One stored run's curves, arrays of shape (n,) and (m,), oldest first."""

    key: object  # the run's id
    label: str  # its name in the legend
    train: dict[str, np.ndarray]  # "step", "chars", "time", "loss"
    val: dict[str, np.ndarray]  # same keys


def bucket_means(columns: dict[str, np.ndarray], max_points: int) -> tuple[dict, int]:
    """Each column cut into equal buckets of ``k`` points (the last one may be shorter) and
    replaced by the bucket means; ``k = ceil(n / max_points)``, 1 when short enough."""
    n = len(next(iter(columns.values()))) if columns else 0
    k = max(1, -(-n // max_points))
    if k == 1:
        return dict(columns), 1
    starts = np.arange(0, n, k)
    counts = np.diff(np.append(starts, n))
    return {
        name: np.add.reduceat(np.asarray(col, dtype=np.float64), starts) / counts
        for name, col in columns.items()
    }, k


class LossPlot(QWidget):
    """Plots a :class:`LossHistory`; the owner calls ``refresh_now()`` only in tests."""

    log_scale_changed = Signal(bool)
    x_axis_changed = Signal(str)  # a key of X_AXES

    def __init__(self, history: LossHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self._drawn_version = -1
        self._val_drawn: tuple | None = None  # what the validation curve shows (see refresh)
        self._rollbacks_drawn: tuple | None = None
        self.live = False  # a run is training: redraws are rate-limited (set_live)
        self.redraws = 0  # redraws done (tests and benchmarks count them)
        self._soon = QTimer(self)  # a change the user made, drawn at once even while live
        self._soon.setSingleShot(True)
        self._soon.setInterval(REFRESH_MS)  # (a dragged slider: at most this often)
        self._soon.timeout.connect(self.refresh)
        self._smooth = np.empty(0)
        self._smooth_n = 0
        self._smooth_state = (0.0, 0)
        self._smooth_rewrites = history.rewrites
        self.references: list[tuple[str, float, str, pg.InfiniteLine]] = []  # label, nats, tip
        self.references_shown = True
        self.rollback_lines: list[pg.InfiniteLine] = []
        self.x_axis = "step"
        self._overlays: list[tuple[OverlayCurve, dict, int, object, object]] = []

        pg.setConfigOptions(antialias=False)
        self.view_box = SteppedViewBox()
        self.widget = pg.PlotWidget(
            background="w",
            viewBox=self.view_box,
            axisItems={"bottom": CountAxis("bottom"), "left": LossAxis("left")},
        )
        self.plot = self.widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("left", "loss (nats per character)")
        self.plot.setLabel("bottom", "step")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        for name in ("left", "bottom"):
            # an axis replays its ticks, labels and the grid (QPicture) on every repaint of the
            # plot, most of a repaint's time: cached as a pixmap, redrawn when its range changes
            self.plot.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
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
        self.x_combo = QComboBox()
        for key, label in X_AXES.items():
            self.x_combo.addItem(label.removesuffix(" (s)"), key)
        self.x_combo.setToolTip(
            "The horizontal axis: optimizer steps; training characters consumed (to compare "
            "runs with different batch sizes or sequence lengths); or training time (to compare "
            "what runs reach in the same minutes)."
        )
        self.x_combo.currentIndexChanged.connect(
            lambda i: self.set_x_axis(self.x_combo.itemData(i))
        )
        x_label = QLabel("&x:")
        x_label.setBuddy(self.x_combo)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Smoothing:"))
        bar.addWidget(self.smoothing, 1)
        bar.addWidget(self.smoothing_label)
        bar.addSpacing(12)
        bar.addWidget(self.log_box)
        bar.addWidget(x_label)
        bar.addWidget(self.x_combo)
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

    def set_live(self, on: bool) -> None:
        """A run is training (True) or not: while it is, new points are drawn at most
        ``LIVE_HZ`` times a second and the view grows in steps; afterwards everything
        is drawn at once and the view fits the data again."""
        if on == self.live:
            return
        self.live = on
        self.timer.setInterval(round(1000 / LIVE_HZ) if on else REFRESH_MS)
        self.view_box.set_stepping(on)
        if not on:
            self.refresh()

    def _redraw_all(self) -> None:
        """Something other than the data changed: redraw every curve soon."""
        self._drawn_version = -1
        self._val_drawn = self._rollbacks_drawn = None
        if not self._soon.isActive():
            self._soon.start()

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 1000:.3f}")
        self._smooth_n = 0  # recompute the whole smoothed curve on the next refresh
        self._smooth_state = (0.0, 0)
        self._redraw_all()
        self._draw_overlays()

    def set_log_scale(self, on: bool) -> None:
        if self.log_box.isChecked() != on:
            self.log_box.setChecked(on)
            return
        self.plot.setLogMode(y=on)
        self._place_references()
        self._redraw_all()
        self._draw_overlays()
        self.log_scale_changed.emit(on)

    def set_x_axis(self, axis: str) -> None:
        """Plot against "step", "chars" (characters seen) or "time" (training seconds)."""
        if axis not in X_AXES:
            axis = "step"
        if axis == self.x_axis == self.x_combo.currentData():
            return
        if self.x_combo.currentData() != axis:
            self.x_combo.setCurrentIndex(list(X_AXES).index(axis))
            return
        self.x_axis = axis
        self.plot.setLabel("bottom", X_AXES[axis])
        self._redraw_all()
        self._draw_overlays()
        self.plot.enableAutoRange()
        self.x_axis_changed.emit(axis)

    def _x(self, series) -> np.ndarray:
        return {"step": series.step, "chars": series.chars, "time": series.seconds}[self.x_axis]

    # ---------------------------------------------------------------- overlays
    def set_overlays(self, curves: list[OverlayCurve]) -> None:
        """Show these stored runs beside the live one (an empty list removes them all)."""
        for _curve, _cols, _k, train_item, val_item in self._overlays:
            self.plot.removeItem(train_item)
            self.plot.removeItem(val_item)
        self._overlays = []
        for i, curve in enumerate(curves):
            colour = OVERLAY_COLOURS[i % len(OVERLAY_COLOURS)]
            cols, k = bucket_means(curve.train, OVERLAY_POINTS)
            val_cols, _ = bucket_means(curve.val, OVERLAY_POINTS)
            name = html.escape(curve.label)  # a legend label is HTML; a run's name is not
            train_item = self.plot.plot(pen=pg.mkPen(colour, width=1), name=name)
            light = tuple(c + (255 - c) // 2 for c in colour)  # validation: the paler line
            val_item = self.plot.plot(pen=pg.mkPen(light, width=1))
            # thin, solid, opaque pens and curves already cut short: the cheapest to repaint on
            # every pan (wide, dashed or translucent pens cost several times more in raster)
            for item in (train_item, val_item):
                item.setClipToView(False)
                item.setDownsampling(ds=1, auto=False)
            self._overlays.append(
                (curve, {"train": cols, "val": val_cols}, k, train_item, val_item)
            )
        self._draw_overlays()

    def set_live_name(self, name: str) -> None:
        """Name the live curves after their run in the legend ("" for the plain names)."""
        for item, plain in ((self.smooth, "train (smoothed)"), (self.val, "validation")):
            label = self.plot.legend.getLabel(item)
            if label is not None:
                label.setText(f"{html.escape(name)}: {plain}" if name else plain)  # HTML

    @property
    def overlay_keys(self) -> list[object]:
        return [entry[0].key for entry in self._overlays]

    def overlay_items(self) -> list[tuple[object, object]]:
        """(training curve, validation curve) plot items of each overlay, in order (tests)."""
        return [(entry[3], entry[4]) for entry in self._overlays]

    def _draw_overlays(self) -> None:
        log = self.log_box.isChecked()
        for _curve, cols, k, train_item, val_item in self._overlays:
            t, v = cols["train"], cols["val"]
            if cols.get("smoothing") != self.smoothing_value:  # not on every axis switch
                n = len(t["loss"])
                cols["smooth"] = ema(t["loss"], self.smoothing_value**k)[0][:n] if n else t["loss"]
                cols["smoothing"] = self.smoothing_value
            smooth = cols["smooth"]
            xt, xv = t[self.x_axis], v[self.x_axis]
            xt, smooth = _finite_x(xt, smooth, log)
            xv, vl = _finite_x(xv, v["loss"], log)
            train_item.setData(xt, smooth)
            val_item.setData(xv, vl)

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
        """Redraw what changed since the last redraw (called by the timer: 25 Hz, or
        ``LIVE_HZ`` while a run is live)."""
        if self.history.version == self._drawn_version:
            return
        self._drawn_version = self.history.version
        self.redraws += 1
        h = self.history
        log = self.log_box.isChecked()
        x_train, smooth = self._x(h.train), self.smoothed()
        if log:  # log axes cannot show zero or negative losses
            x_train, train_loss, smooth = _positive(x_train, h.train.loss, smooth)
        else:
            train_loss = h.train.loss
        if self.x_axis == "time":  # a curve read from a model file has no times
            x_train, train_loss, smooth = _finite_x(x_train, train_loss, False, smooth)
        self.raw.setData(x_train, train_loss)
        self.smooth.setData(x_train, smooth)
        # the validation points are a scatter whose setData rebuilds every symbol: only when
        # an evaluation came, and the rollback lines only when there is another one
        val_key = (h.val.n, h.rewrites)
        if val_key != self._val_drawn:
            self._val_drawn = val_key
            self._draw_val()
        rollbacks_key = (len(h.rollbacks), h.rewrites)
        if rollbacks_key != self._rollbacks_drawn:
            self._rollbacks_drawn = rollbacks_key
            self._draw_rollbacks()

    def _draw_val(self) -> None:
        h = self.history
        x_val, val_loss = self._x(h.val), h.val.loss
        if self.log_box.isChecked():
            x_val, val_loss = _positive(x_val, val_loss)
        if self.x_axis == "time":
            x_val, val_loss = _finite_x(x_val, val_loss, False)
        self.val.setData(x_val, val_loss)

    def _draw_rollbacks(self) -> None:
        """One vertical line per rollback, at the step (or characters) training returned to."""
        marks = self.history.rollbacks
        while len(self.rollback_lines) > len(marks):
            self.plot.removeItem(self.rollback_lines.pop())
        while len(self.rollback_lines) < len(marks):
            line = pg.InfiniteLine(angle=90, movable=False, pen=ROLLBACK_PEN)
            self.plot.addItem(line, ignoreBounds=True)
            self.rollback_lines.append(line)
        train = self.history.train
        for line, (step, chars, event) in zip(self.rollback_lines, marks, strict=True):
            if self.x_axis == "time":  # the training time at that step, where it is known
                known = np.isfinite(train.seconds)
                times = train.seconds[known]
                x = np.interp(step, train.step[known], times) if len(times) else None
            else:
                x = chars if self.x_axis == "chars" else step
            line.setVisible(x is not None)
            if x is not None:
                line.setPos(x)
            line.setToolTip(rollback_tooltip(event))

    def refresh_now(self) -> None:
        self._redraw_all()
        self.refresh()

    def _mouse_moved(self, pos) -> None:
        if not self.plot.sceneBoundingRect().contains(pos) or self.history.train.n == 0:
            return
        x = self.plot.vb.mapSceneToView(pos).x()
        h = self.history
        xs = self._x(h.train)
        if not np.isfinite(xs[-1]):
            return
        i = int(np.clip(np.searchsorted(xs, x), 0, h.train.n - 1))
        if i > 0 and abs(xs[i - 1] - x) < abs(xs[i] - x):
            i -= 1
        smooth = self.smoothed()
        text = (
            f"step {int(h.train.step[i]):,} · {int(h.train.chars[i]):,} chars · "
            f"train {h.train.loss[i]:.4f} · smoothed {smooth[i]:.4f}"
        )
        if h.val.n:
            vx = self._x(h.val)
            j = int(np.nanargmin(np.abs(vx - x))) if np.isfinite(vx).any() else 0
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

    def png_bytes(self) -> bytes:
        """The plot as it is drawn now, as a PNG file's bytes (written by the one writer)."""
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        self.widget.grab().save(buffer, "PNG")
        return bytes(data.data())


def _positive(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    keep = np.ones(x.shape[0], dtype=bool)
    for y in ys:
        keep &= np.isfinite(y) & (y > 0)
    return (x[keep], *(y[keep] for y in ys))


def rollback_tooltip(event) -> str:
    """'rolled back to step 1,200; learning rate 8e-3 → 4e-3', then why, on a second line."""
    return f"{event.describe()}\nTraining blew up at step {event.from_step:,}: {event.reason}."


def _finite_x(x: np.ndarray, y: np.ndarray, log: bool, *more: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop points without an x (unknown time), and with ``log`` those with a loss <= 0."""
    keep = np.isfinite(x)
    if log:
        keep &= np.isfinite(y) & (y > 0)
    return (x[keep], y[keep], *(m[keep] for m in more))
