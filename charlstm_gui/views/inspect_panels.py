"""The Inspect tab's widgets around the passage: its control rows (PassageRow: which passage;
ColourRow: coloured by what), the side panels (FoundCells: units found by detectors; ByExample:
units found by example; GatesPlot: the gate-saturation scatter) and the time-lapse row
(TimeLapse). Each shows what it is given; InspectView decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from charlstm_core.insight.units import unit_name
from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..widgets.passage_text import Legend

GATE_COLOURS = (("input", (40, 110, 200, 170)), ("forget", (220, 60, 40, 170)),
                ("output", (40, 160, 80, 170)))  # fmt: skip


def kind_name(kind: str) -> str:
    """How an activation kind is named on screen: "c" → "tanh(c)", "h" → "h"."""
    return "tanh(c)" if kind == "c" else "h"


class FoundCells(QTreeWidget):
    """Per detector (a simple fact about the text), the units whose activation follows it best.
    Clicking a unit emits ``unit_chosen((kind, layer, unit))``, 0-based layer."""

    unit_chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Detector / unit", "r"])
        self.setToolTip(
            "For each simple fact about the text, the units whose activation follows it best "
            "(Pearson r over the passage). Click a unit to colour the passage by it."
        )
        self.setColumnWidth(0, 210)
        self.itemClicked.connect(self._on_clicked)

    def fill(self, ranking: dict[str, list[Any]], kind: str, shown: tuple) -> None:
        """Show ``ranking`` (detector → [UnitScore]) of ``kind``; the groups open stay open and
        the unit ``shown`` (kind, layer, unit) stays selected."""
        from charlstm_core.insight.inspect import DETECTORS

        expanded = {
            self.topLevelItem(i).text(0)
            for i in range(self.topLevelItemCount())
            if self.topLevelItem(i).isExpanded()
        }
        self.clear()
        name_kind = kind_name(kind)
        for name, description in DETECTORS.items():
            scores = ranking.get(name, [])
            top = QTreeWidgetItem([name, f"{abs(scores[0].r):.2f}" if scores else "—"])
            top.setToolTip(0, description + ("" if scores else " (not in this passage)"))
            for s in scores:
                child = QTreeWidgetItem([unit_name(s.layer, s.unit), f"{s.r:+.2f}"])
                child.setData(0, Qt.ItemDataRole.UserRole, (kind, s.layer, s.unit))
                child.setToolTip(0, f"Colour the passage by this unit's {name_kind}.")
                top.addChild(child)
            self.addTopLevelItem(top)
            top.setExpanded(name in expanded or not expanded)
            for k in range(top.childCount()):  # the unit on show stays selected after a refresh
                if tuple(top.child(k).data(0, Qt.ItemDataRole.UserRole)) == shown:
                    self.setCurrentItem(top.child(k))

    @Slot(QTreeWidgetItem, int)
    def _on_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        data = item.data(0, Qt.ItemDataRole.UserRole)
        if data:
            self.unit_chosen.emit(tuple(data))


class ByExample(QWidget):
    """Select and match (LSTMVis): the units on all through a selected stretch and off around
    it. Clicking a unit emits ``unit_chosen((kind, layer, unit))``, 0-based layer."""

    unit_chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(-1.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.5)
        self.threshold.setToolTip(
            "A unit is 'on' where its value (of the colouring shown: tanh(c) or h) is at least "
            "this."
        )
        self.match_button = QPushButton("&Match Selection")
        self.match_button.setToolTip(
            "Select a stretch of the passage, then find the units that are on all through it "
            "and off just before and after it, and every other place they are on together."
        )
        self.match_units = QListWidget()
        self.match_units.setToolTip("Click a unit to colour the passage by it.")
        self.match_label = QLabel("Select part of the passage, then press Match Selection.")
        self.match_label.setWordWrap(True)
        ex = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("On at ≥"))
        row.addWidget(self.threshold)
        row.addWidget(self.match_button, 1)
        ex.addLayout(row)
        ex.addWidget(self.match_label)
        ex.addWidget(self.match_units, 1)
        self.match_units.itemClicked.connect(
            lambda item: self.unit_chosen.emit(tuple(item.data(Qt.ItemDataRole.UserRole)))
        )

    def match(
        self, analysis: Any, a: int, b: int, kind: str
    ) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
        """Match characters [a, b) of ``analysis`` (a charlstm_core.insight.inspect.Analysis) at the
        threshold set, list the units found and say what was found. Returns (N,) bool: the
        characters to mark (the selection and every other place the units are on together; none when
        no unit matched), and those other places as [start, end) spans."""
        from charlstm_core.insight.inspect import match_selection

        m = match_selection(analysis, a, b, self.threshold.value(), kind)
        self.show_match(m, kind, a, b)
        mask = np.zeros(len(analysis.text), bool)
        if m.units:
            for s, e in m.spans:
                mask[s:e] = True
            mask[a:b] = True
        return mask, m.spans

    def show_match(self, match: Any, kind: str, a: int, b: int) -> None:
        """List the units of ``match`` (a charlstm_core.insight.inspect match of characters [a, b))
        and say
        what was found."""
        for u in match.units:
            item = QListWidgetItem(
                f"{unit_name(u.layer, u.unit)}: {u.inside:+.2f} inside, {u.outside:+.2f} elsewhere"
            )
            item.setData(Qt.ItemDataRole.UserRole, (kind, u.layer, u.unit))
            self.match_units.addItem(item)
        if not match.units:
            self.match_label.setText(
                f"No unit has {kind_name(kind)} ≥ {self.threshold.value():.2f} all through "
                f"characters {a:,}–{b - 1:,} and below it just before and after. Lower the "
                "threshold or select a different stretch."
            )
        else:
            self.match_label.setText(
                f"{len(match.units)} unit(s) are on through characters {a:,}–{b - 1:,}; together "
                f"they are on at {len(match.spans)} other place(s), underlined in green."
            )


class GatesPlot(pg.PlotWidget):
    """Each unit's input, forget and output gate of one layer: how often nearly shut (x) and
    nearly open (y) on the passage."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        gp = self.getPlotItem()
        gp.setLabel("bottom", "fraction left-saturated (< 0.1)")
        gp.setLabel("left", "fraction right-saturated (> 0.9)")
        gp.setXRange(0, 1)
        gp.setYRange(0, 1)
        gp.showGrid(x=True, y=True, alpha=0.2)
        gp.addLegend(offset=(-5, 5))
        gp.plot([0, 1], [1, 0], pen=pg.mkPen((180, 180, 180), style=Qt.PenStyle.DashLine))
        self.gate_points = [
            gp.plot(
                [],
                [],
                pen=None,
                symbol="o",
                symbolSize=6,
                symbolPen=None,
                symbolBrush=colour,
                name=name,
            )  # fmt: skip
            for name, colour in GATE_COLOURS
        ]
        self.setToolTip(
            "Each dot is one unit's gate in the chosen layer: how often it is nearly shut "
            "(left) or nearly open (right) on this passage. Forget gates far up the left axis "
            "keep their memory: these units can count and track long-range structure."
        )

    def show_layer(self, saturation: np.ndarray, layer: int) -> None:
        """Plot ``saturation`` (3, H, 2) of 1-based ``layer``."""
        for g, points in enumerate(self.gate_points):
            points.setData(saturation[g, :, 0], saturation[g, :, 1])
        title = f"Gate saturation, layer {layer}"
        if self.getPlotItem().titleLabel.text != title:
            self.getPlotItem().setTitle(title)


class TimeLapse(QWidget):
    """The time-lapse row: a slider over the evaluations so far, its label and a play button
    that steps through them. ``frame_changed(i)`` when the slider moves."""

    frame_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Qt's own media icons: a font may lack ▶ and ⏸ (the pause button was an empty box)
        self._icons = {
            on: self.style().standardIcon(pixmap)
            for on, pixmap in (
                (False, QStyle.StandardPixmap.SP_MediaPlay),
                (True, QStyle.StandardPixmap.SP_MediaPause),
            )
        }
        self.play = QPushButton()
        self.play.setIcon(self._icons[False])
        self.play.setCheckable(True)
        self.play.setMaximumWidth(36)
        self.play.setAccessibleName("Play")
        self.play.setToolTip("Replay the surprise colouring evaluation by evaluation.")
        self.time = QSlider(Qt.Orientation.Horizontal)
        self.time.setRange(0, 0)
        self.time.setPageStep(1)
        self.time.setToolTip(
            "Time-lapse: the surprise colouring of this passage at each evaluation so far."
        )
        self.time_label = QLabel("no evaluations yet")
        lapse = QHBoxLayout(self)
        lapse.setContentsMargins(0, 0, 0, 0)
        lapse.addWidget(QLabel("Time-lapse:"))
        lapse.addWidget(self.play)
        lapse.addWidget(self.time, 1)
        lapse.addWidget(self.time_label)
        self._timer = QTimer(self)
        self._timer.setInterval(400)
        self.time.valueChanged.connect(self.frame_changed)
        self.play.toggled.connect(self._on_play)
        self._timer.timeout.connect(self._step)

    def at_newest(self) -> bool:
        return self.time.value() == self.time.maximum()

    def set_count(self, n: int, follow: bool) -> None:
        """``n`` evaluations; with ``follow`` the slider moves to the newest (no signal)."""
        self.time.blockSignals(True)
        self.time.setRange(0, max(0, n - 1))
        if follow:
            self.time.setValue(max(0, n - 1))
        self.time.blockSignals(False)

    def set_enabled(self, on: bool) -> None:
        self.time.setEnabled(on)
        self.play.setEnabled(on)

    def show_frame(self, frames: list[tuple[int, np.ndarray]]) -> None:
        """Label the frame the slider points at: (step, bits) of each evaluation."""
        n = len(frames)
        if n == 0:
            self.time_label.setText("no evaluations yet")
            return
        step, bits = frames[self.time.value()]
        self.time_label.setText(
            f"step {step:,} · {float(bits.mean()):.2f} bits/char ({self.time.value() + 1} of {n})"
        )

    @Slot(bool)
    def _on_play(self, on: bool) -> None:
        if on:
            if self.at_newest():
                self.time.setValue(0)
            self._timer.start()
        else:
            self._timer.stop()
        self.play.setIcon(self._icons[on])
        self.play.setAccessibleName("Pause" if on else "Play")
        self.play.setToolTip(
            "Pause the replay." if on else "Replay the surprise colouring evaluation by evaluation."
        )

    def _step(self) -> None:
        if self.time.value() >= self.time.maximum():
            self.play.setChecked(False)
            return
        self.time.setValue(self.time.value() + 1)


def line_start(
    ids: np.ndarray, a: int, newline: int | None, within: int, *, begins_a_line: bool = False
) -> int:
    """Where a passage chosen to start at ``a`` of ``ids`` (N,) starts: ``a`` itself when a line
    begins there, else the start of the next line if one begins within ``within`` characters
    (a passage read from mid-word, ``e(data.decode('ascii'))``, puzzles a reader and the model
    alike), else ``a``. ``begins_a_line``: whether a line begins at ``ids[0]`` (a whole text;
    the validation part is cut from the text wherever its fraction falls)."""
    if newline is None or (a == 0 and begins_a_line) or (a > 0 and ids[a - 1] == newline):
        return a
    ahead = np.flatnonzero(ids[a : a + within] == newline)
    return a + int(ahead[0]) + 1 if ahead.size and a + int(ahead[0]) + 1 < ids.size - 1 else a


class PassageRow(QWidget):
    """Which passage the model reads: its source, where it starts and how long it is (for the
    validation text), Analyse, Live, and the passage's mean surprise."""

    def __init__(
        self,
        sources: tuple[str, ...],
        default_length: int,
        max_length: int,
        corpus: Callable[[], Any],
        split_fraction: Callable[[], float],
        generated_text: Callable[[], str],
    ) -> None:
        super().__init__()
        self._corpus, self._split_fraction = corpus, split_fraction
        self._generated_text, self._max_length = generated_text, max_length
        self.own_text = QPlainTextEdit()  # the "Your text" source; the view places it
        self.own_text.setPlaceholderText(
            "Type or paste a passage here: the model reads it when you pause."
        )
        self.own_text.setMaximumHeight(90)
        self.own_text.setVisible(False)
        self.source = QComboBox()
        self.source.addItems(sources)
        self.source.setToolTip(
            "Which passage the model reads: the validation text (never trained on), text you "
            "type or paste, or the text last written in the Generate tab."
        )
        self.start = QSpinBox()
        self.start.setGroupSeparatorShown(True)
        self.start.setSingleStep(500)
        self.start.setToolTip(
            "Where in the validation text the passage starts: the first line that begins at or "
            "after this character."
        )
        self.length = QSpinBox()
        self.length.setRange(100, max_length)
        self.length.setSingleStep(500)
        self.length.setGroupSeparatorShown(True)
        self.length.setValue(default_length)
        self.length.setToolTip("How many characters of the validation text the passage holds.")
        self.analyse_button = QPushButton("&Analyse")
        self.analyse_button.setToolTip("Let the current model read the passage now.")
        self.live = QCheckBox("&Live")
        self.live.setChecked(True)
        self.live.setToolTip(
            "While training, read the passage again with a copy of the weights at every "
            "evaluation (training does not pause)."
        )
        self.mean = QLabel("")
        self.mean.setToolTip("The passage's mean surprise: bits per character (lower is better).")
        self.start_label = QLabel("from character")
        self.length_label = QLabel("length")
        top = QHBoxLayout(self)
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Passage:"))
        top.addWidget(self.source)
        for w in (self.start_label, self.start, self.length_label, self.length):
            top.addWidget(w)
        top.addWidget(self.analyse_button)
        top.addWidget(self.live)
        top.addStretch(1)
        top.addWidget(self.mean)

    def restore_settings(self, s: QSettings, default_length: int) -> None:
        self.source.setCurrentIndex(s.value("inspect/source", 0, type=int))
        self.length.setValue(s.value("inspect/length", default_length, type=int))
        self.live.setChecked(s.value("inspect/live", True, type=bool))

    def save_settings(self, s: QSettings) -> None:
        s.setValue("inspect/source", self.source.currentIndex())
        s.setValue("inspect/length", self.length.value())
        s.setValue("inspect/live", self.live.isChecked())

    def show_source_controls(self, index: int) -> None:
        """Start and length apply to the validation text (source 0), the editor to your text (1)."""
        for w in (self.start, self.length, self.start_label, self.length_label):
            w.setVisible(index == 0)
        self.own_text.setVisible(index == 1)

    def validation_ids(self) -> tuple[np.ndarray, str]:
        """The ids of the validation part of the text (all of it when there is none), and what
        they are, in words."""
        corpus = self._corpus()
        val = corpus.split(self._split_fraction())[1]
        if val.size >= 2:
            return val, "validation text"
        return corpus.ids, "text (there is no validation part)"

    def passage_text(self) -> str:
        """The passage the current source gives, at most ``max_length`` characters."""
        src = self.source.currentIndex()
        if src == 0:
            if self._corpus() is None:
                return ""
            ids, what = self.validation_ids()
            a = min(self.start.value(), max(0, ids.size - 2))
            chars = self._corpus().vocab.chars
            newline = chars.index("\n") if "\n" in chars else None
            whole = what != "validation text"
            a = line_start(ids, a, newline, self.length.value() // 2, begins_a_line=whole)
            return self._corpus().vocab.decode(ids[a : a + self.length.value()])
        text = self.own_text.toPlainText() if src == 1 else self._generated_text()
        return text[: self._max_length]

    def update_start_range(self) -> None:
        """The start can move over the whole validation text of the current split."""
        if self._corpus() is None:
            self.start.setRange(0, 0)
            return
        ids, what = self.validation_ids()
        self.start.setRange(0, max(0, ids.size - self.length.value()))
        self.start.setToolTip(
            f"Where in the {what} the passage starts: the first line that begins at or after "
            f"this character ({ids.size:,} characters in all)."
        )

    def empty_hint(self) -> str:
        """What to do when the current source gives no passage."""
        src = self.source.currentIndex()
        if src == 0:
            return "Open a text (File menu) to read a passage of its validation part."
        if src == 1:
            return "Type or paste a passage above; the model reads it when you pause."
        return "Generate some text first (Generate tab)."


class ColourRow(QWidget):
    """What the passage is coloured by: surprise, or one unit's tanh(c) or h (layer, unit by
    spin box or slider, kept in step), and the colour scale."""

    def __init__(self, modes: tuple[str, ...]) -> None:
        super().__init__()
        self.mode = QComboBox()
        self.mode.addItems(modes)
        self.mode.setToolTip(
            "Colour each character by the model's surprise on it (bits of information it "
            "needed), or by one unit's cell value tanh(c) or hidden value h after reading it."
        )
        self.layer = QSpinBox()
        self.layer.setRange(1, 1)
        self.layer.setToolTip("Which layer's unit to show (1 = nearest the text).")
        self.unit = QSpinBox()
        self.unit.setRange(0, 0)
        self.unit.setWrapping(True)
        self.unit.setToolTip("Which unit to colour by. Up/Down here, or Alt+Up/Down in the text.")
        self.unit_slider = QSlider(Qt.Orientation.Horizontal)
        self.unit_slider.setRange(0, 0)
        self.unit_slider.setToolTip("Which unit to colour by (arrow keys step through units).")
        self.legend = Legend()
        colour = QHBoxLayout(self)
        colour.setContentsMargins(0, 0, 0, 0)
        colour.addWidget(QLabel("Colour by:"))
        colour.addWidget(self.mode)
        colour.addWidget(QLabel("layer"))
        colour.addWidget(self.layer)
        colour.addWidget(QLabel("unit"))
        colour.addWidget(self.unit)
        colour.addWidget(self.unit_slider, 1)
        colour.addWidget(self.legend)
        self.unit.valueChanged.connect(self.unit_slider.setValue)
        self.unit_slider.valueChanged.connect(self.unit.setValue)

    def set_shape(self, layers: int, units: int) -> None:
        """The model's layers and units per layer bound the choice."""
        self.layer.setRange(1, layers)
        self.unit.setRange(0, units - 1)
        self.unit_slider.setRange(0, units - 1)
