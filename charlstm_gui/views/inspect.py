"""The Inspect tab: what the model thinks of a passage, shown as coloured text.

A passage (the validation text from a movable start, the user's own text, or the latest generated
text) is read by the model (``charlstm_core.insight.inspect.analyse``) off the GUI thread, on a
snapshot of
the weights taken between two training steps, at every evaluation while training runs, or on the
opened model. The view then colours each character by the model's surprise, −log2 p (bits), or by
one unit's cell value tanh(c) or hidden value h on a diverging map; hovering a character shows the
five likeliest next characters. Units are found automatically (correlation with simple detectors) or
by example (select a range: LSTMVis's select-and-match); a scatter shows gate saturation. A
time-lapse slider replays the surprise colouring at every evaluation so far: one (N-1,) array of
bits per evaluation is kept, never weights.

This module holds the view's state and its wiring to the controller. The coloured passage is
charlstm_gui/widgets/passage_text.py, the side panels and the time-lapse row
charlstm_gui/views/inspect_panels.py,
the analysis made off the GUI thread charlstm_gui/views/inspect_analysis.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QLabel,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..controller.state import State
from ..widgets.passage_text import (
    DIVERGING_STOPS,
    SURPRISE_LEVELS,
    SURPRISE_STOPS,
    VALUE_LEVELS,
    PassageText,
    ramp,
    surprise_levels,
    tooltip_html,
    value_levels,
)
from .inspect_analysis import AnalysisQueue, InspectResult
from .inspect_panels import ByExample, ColourRow, FoundCells, GatesPlot, PassageRow, TimeLapse

DEFAULT_LENGTH = 2000  # characters of the default passage
MAX_LENGTH = 10_000  # longest passage the view analyses
SOURCES = ("Validation text", "Your text", "Latest generated text")
MODES = ("Surprise (bits)", "Cell value tanh(c)", "Hidden value h")
MODE_KIND = {1: "c", 2: "h"}


class InspectView(QWidget):
    """The Inspect tab. It talks to the controller only: ``run_task`` for the analysis,
    ``request_inspect_snapshot`` while training, and the model, corpus and event signals."""

    analysed = Signal()  # a new analysis is shown (tests wait for it)

    def __init__(
        self,
        controller: Any,
        val_fraction: Callable[[], float],
        generated_text: Callable[[], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctl = controller
        self._val_fraction = val_fraction
        self._generated_text = generated_text
        self.result: InspectResult | None = None
        self.timelapse: list[tuple[int, np.ndarray]] = []  # (step, (N-1,) bits) per evaluation
        self.passage = ""  # the passage analysed, as characters
        self.analyses = AnalysisQueue(
            controller, lambda: self.passage, self._say, self._show_result, self.analyse_now
        )
        self._analyse = self.analyses.read
        self._match_mask = np.zeros(0, bool)  # characters where the matched units are on
        self._selection: tuple[int, int] | None = None  # [start, end) matched by example
        self.match_spans: tuple[tuple[int, int], ...] = ()
        self._found_kind = "c"  # the activation the "Found cells" list ranks
        self._values: dict[str, np.ndarray] = {}  # kind → (L, N, H) of the newest analysis
        self._hold = False  # several controls change at once: recolour after the last
        self._surprise_colours = ramp(SURPRISE_STOPS, SURPRISE_LEVELS)
        self._value_colours = ramp(DIVERGING_STOPS, VALUE_LEVELS)
        self._build()
        self._connect()
        self._show_scale()

    # ---------------------------------------------------------------- construction
    def _build(self) -> None:
        self.passage_row = r = PassageRow(
            SOURCES,
            DEFAULT_LENGTH,
            MAX_LENGTH,
            lambda: self.ctl.corpus,
            self._split_fraction,
            self._generated_text,
        )
        self.own_text = r.own_text
        self.source, self.start, self.length = r.source, r.start, r.length
        self.analyse_button, self.live, self.mean = r.analyse_button, r.live, r.mean
        self.colour_row = ColourRow(MODES)
        c = self.colour_row
        self.mode, self.layer, self.unit = c.mode, c.layer, c.unit
        self.unit_slider, self.legend = c.unit_slider, c.legend
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.text = PassageText()
        self.text.tooltip_for = self.tooltip

        self.found = FoundCells()
        self.by_example = ByExample()
        self.threshold = self.by_example.threshold
        self.match_button = self.by_example.match_button
        self.match_units = self.by_example.match_units
        self.match_label = self.by_example.match_label
        self.gates = GatesPlot()
        self.gate_points = self.gates.gate_points
        self.side = QTabWidget()
        self.side.addTab(self.found, "Found cells")
        self.side.addTab(self.by_example, "By example")
        self.side.addTab(self.gates, "Gates")
        self.lapse = TimeLapse()
        self.play, self.time, self.time_label = (
            self.lapse.play,
            self.lapse.time,
            self.lapse.time_label,
        )

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.own_text)
        lv.addWidget(self.text, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.passage_row)
        lay.addWidget(self.colour_row)
        lay.addWidget(self.lapse)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        self._set_unit_controls(False)
        self._passage_timer = QTimer(self)  # moving the start by dragging: analyse once
        self._passage_timer.setSingleShot(True)
        self._passage_timer.setInterval(300)

    def _connect(self) -> None:
        c = self.ctl
        c.corpus_changed.connect(self._on_corpus)
        c.model_changed.connect(self._on_model)
        c.inspect_snapshot.connect(self._on_snapshot)
        c.generation_finished.connect(self._on_generated)
        c.history_reset.connect(self._on_new_model)
        c.state_changed.connect(self._on_state)
        self.source.currentIndexChanged.connect(self._on_source)
        self.start.valueChanged.connect(self._passage_timer.start)
        self.length.valueChanged.connect(self._passage_timer.start)
        self.own_text.textChanged.connect(self._passage_timer.start)  # read once typing pauses
        self._passage_timer.timeout.connect(self.reload_passage)
        self.analyse_button.clicked.connect(self._analyse_clicked)
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.layer.valueChanged.connect(self._on_layer)
        self.unit.valueChanged.connect(self._on_unit)
        self.text.step_unit.connect(lambda d: self.unit.setValue(self.unit.value() + d))
        self.lapse.frame_changed.connect(self._on_time)
        self.found.unit_chosen.connect(lambda unit: self.show_unit(*unit))
        self.match_button.clicked.connect(self.match_selection)
        self.by_example.unit_chosen.connect(lambda unit: self.show_unit(*unit))
        self.threshold.valueChanged.connect(self._rematch)
        self.side.currentChanged.connect(self._show_gates)
        self.live.toggled.connect(self.ctl.set_inspect_live)
        self.ctl.set_inspect_live(self.live.isChecked())

    # ---------------------------------------------------------------- the passage
    def _split_fraction(self) -> float:
        cfg = self.ctl.train_config
        return cfg.val_fraction if cfg is not None else self._val_fraction()

    def passage_text(self) -> str:
        """The passage the current source gives, at most MAX_LENGTH characters."""
        return self.passage_row.passage_text()

    @Slot()
    def reload_passage(self) -> None:
        """Take the passage from its source, show it plain, and analyse it with the model."""
        text = self.passage_text()
        if text == self.passage and self.result is not None:
            return
        self.passage = text
        self.result = None
        self.timelapse = []
        self._match_mask = np.zeros(len(text), bool)
        self._selection, self.match_spans = None, ()
        self.text.show_text(text)
        self._update_time_slider()
        self.found.clear()
        self.match_units.clear()
        self.mean.setText("")
        if text:
            self.analyse_now()
        else:
            self._say(self.passage_row.empty_hint())

    def _say(self, text: str) -> None:
        self.status.setText(text)

    # ---------------------------------------------------------------- analysis
    def analyse_now(self) -> None:
        """Analyse the passage with the newest model: a fresh snapshot while training, else the
        opened (or last trained) model."""
        if not self.passage:
            return
        if self.ctl.training and self.ctl.request_inspect_snapshot():
            self._say("Taking a copy of the weights…")
            return
        if self.ctl.model is None:
            self._say("No model yet: train one, or open a model file, to see what it thinks.")
            return
        self._analyse(self.ctl.model)

    def _show_result(self, result: InspectResult) -> None:
        a = result.analysis
        self.result = result
        self._values = {}
        L, _, H = a.h.shape
        self.colour_row.set_shape(L, H)
        if not self.timelapse or self.timelapse[-1][0] != result.step:
            follow = self.time.value() == self.time.maximum()
            self.timelapse.append((result.step, a.bits.copy()))
            self._update_time_slider(follow)
        else:
            self.timelapse[-1] = (result.step, a.bits.copy())
        self.mean.setText(f"<b>{a.mean_bits:.2f} bits/char</b>")
        self._say(
            f"Read by {result.source}: {len(a.text):,} characters, mean "
            f"{a.mean_bits:.3f} bits per character. Hover a character for the model's guesses."
        )
        self._fill_found()
        self._show_gates()
        self._rematch(apply=False)
        self.recolour()
        self.analysed.emit()

    # ---------------------------------------------------------------- colouring
    def mode_kind(self) -> str | None:
        """None for surprise, else "c" or "h"."""
        return MODE_KIND.get(self.mode.currentIndex())

    def char_levels(self) -> tuple[np.ndarray, list[QColor]]:
        """(N,) colour level of each passage character in the current mode, and the colours."""
        n = len(self.passage)
        if self.result is None or n == 0:
            return np.full(n, -1, np.int16), []
        kind = self.mode_kind()
        if kind is None:
            bits = self.shown_bits()
            per_char = np.full(n, np.nan)
            per_char[1:] = bits  # c_{t+1} carries bits[t]; the first character is not predicted
            return surprise_levels(per_char), self._surprise_colours
        values = self.values(kind)[self.layer.value() - 1, :, self.unit.value()]
        return value_levels(values), self._value_colours

    def shown_bits(self) -> np.ndarray:
        """The surprise the time-lapse slider points at (the newest analysis by default)."""
        i = self.time.value()
        if 0 <= i < len(self.timelapse) and i != len(self.timelapse) - 1:
            return self.timelapse[i][1]
        return self.result.analysis.bits

    def recolour(self) -> None:
        """Apply the current colouring: one pass, one format per colour level."""
        if self._hold:
            return
        levels, colours = self.char_levels()
        self.text.paint(levels, colours, self._match_mask)

    def _show_scale(self) -> None:
        kind = self.mode_kind()
        if kind is None:
            self.legend.show_surprise(self._surprise_colours)
        else:
            self.legend.show_values(self._value_colours, kind)

    @Slot(int)
    def _on_mode(self, index: int) -> None:
        self._set_unit_controls(index != 0)
        self._show_scale()
        if self.result is not None and (self.mode_kind() or "c") != self._found_kind:
            QTimer.singleShot(0, self._fill_found)  # never delete the item being clicked
        self._rematch()
        self.recolour()

    def _set_unit_controls(self, on: bool) -> None:
        for w in (self.unit, self.unit_slider, self.threshold, self.match_button):
            w.setEnabled(on)  # the layer stays: it also picks the layer of the gate scatter
        self.lapse.set_enabled(not on and len(self.timelapse) > 1)

    @Slot()
    def _on_layer(self) -> None:
        if self.result is not None:
            self._show_gates()
        self._on_unit()

    @Slot()
    def _on_unit(self) -> None:
        if self.result is not None and self.mode_kind() is not None:
            self.recolour()

    def show_unit(self, kind: str, layer: int, unit: int) -> None:
        """Colour by ``kind`` ("c" or "h") of 0-based ``layer``, ``unit`` (one recolouring)."""
        self._hold = True
        try:
            self.mode.setCurrentIndex(1 if kind == "c" else 2)
            self.layer.setValue(layer + 1)
            self.unit.setValue(unit)
        finally:
            self._hold = False
        self.recolour()

    def values(self, kind: str) -> np.ndarray:
        """(L, N, H) activations of ``kind`` of the newest analysis, computed once."""
        if kind not in self._values:
            self._values[kind] = self.result.analysis.values(kind)
        return self._values[kind]

    # ---------------------------------------------------------------- tooltip
    def tooltip(self, i: int) -> str:
        """Rich text for passage character ``i``: what the model expected there and what came."""
        r = self.result
        if r is None or not 0 <= i < len(self.passage):
            return ""
        lapse_step = None
        if len(self.timelapse) > 1 and not self.lapse.at_newest():
            lapse_step = self.timelapse[self.time.value()][0]
        unit = None
        kind = self.mode_kind()
        if kind is not None:
            layer, u = self.layer.value(), self.unit.value()
            unit = (kind, layer, u, float(self.values(kind)[layer - 1, i, u]))
        return tooltip_html(r.analysis, self.passage, i, self.shown_bits(), lapse_step, unit)

    # ---------------------------------------------------------------- time-lapse
    def _update_time_slider(self, follow: bool = True) -> None:
        self.lapse.set_count(len(self.timelapse), follow)
        self._set_unit_controls(self.mode.currentIndex() != 0)
        self.lapse.show_frame(self.timelapse)

    @Slot(int)
    def _on_time(self, value: int) -> None:
        self.lapse.show_frame(self.timelapse)
        if self.mode_kind() is None:
            self.recolour()

    # ---------------------------------------------------------------- found cells
    def _fill_found(self) -> None:
        if self.result is None:
            return
        kind = self._found_kind = self.mode_kind() or "c"
        shown = (self.mode_kind(), self.layer.value() - 1, self.unit.value())
        self.found.fill(self.result.ranking[kind], kind, shown)

    # ---------------------------------------------------------------- select and match
    def match_selection(self) -> None:
        """Find the units on all through the selected characters and off around them."""
        a, b = self.text.selected_chars()
        if b <= a:
            self.match_label.setText("Select part of the passage first (drag over it).")
            return
        self._selection = (a, b)
        self._rematch()

    def _rematch(self, apply: bool = True) -> None:
        sel = self._selection
        kind = self.mode_kind()
        self.match_units.clear()
        self._match_mask = np.zeros(len(self.passage), bool)
        if self.result is None or sel is None or kind is None:
            if self.result is not None and apply:
                self.recolour()
            return
        a, b = sel
        if b > len(self.passage):
            return
        self._match_mask, spans = self.by_example.match(self.result.analysis, a, b, kind)
        self.match_spans = spans
        if apply:
            self.recolour()

    # ---------------------------------------------------------------- gates
    def _show_gates(self) -> None:
        """Plot the chosen layer's gate saturation (only while the Gates tab shows: a hidden
        scatter of 3·H points is drawn when the tab is opened)."""
        if self.result is None or self.side.currentWidget() is not self.gates:
            return
        layer = self.layer.value()
        self.gates.show_layer(self.result.saturation[layer - 1], layer)

    # ---------------------------------------------------------------- controller → view
    @Slot(int)
    def _on_source(self, index: int) -> None:
        self.passage_row.show_source_controls(index)
        self.reload_passage()

    def _analyse_clicked(self) -> None:
        if self.passage_text() != self.passage:
            self.reload_passage()
        else:
            self.analyse_now()

    @Slot(object)
    def _on_corpus(self, corpus: Any) -> None:
        self.passage_row.update_start_range()
        if self.source.currentIndex() == 0:
            self.result = None
            self.reload_passage()

    @Slot(object, str)
    def _on_model(self, model: Any, source: str) -> None:
        """A model was opened, or training ended: read the passage with it."""
        if model is None:
            return
        self.passage_row.update_start_range()
        if self.passage_text() != self.passage:
            self.reload_passage()
        elif self.passage:
            self._analyse(model)

    @Slot()
    def _on_new_model(self) -> None:
        """A new model (trained from scratch, or opened): its time-lapse starts afresh."""
        self.timelapse = []
        self._update_time_slider()

    @Slot(object)
    def _on_state(self, state: State) -> None:
        if state is State.STARTING:  # the run's split decides which text is the validation text
            self.passage_row.update_start_range()
            if self.passage_text() != self.passage:
                self.reload_passage()
            elif self.live.isChecked():  # the time-lapse starts from the model the run starts at
                self.analyse_now()

    @Slot(object)
    def _on_snapshot(self, model: Any) -> None:
        """A copy of the weights: taken after an evaluation, or asked for by ``analyse_now``."""
        if self.passage:
            self._analyse(model)

    @Slot(bool)
    def _on_generated(self, completed: bool) -> None:
        if self.source.currentIndex() == 2:
            self.reload_passage()

    # ---------------------------------------------------------------- settings
    def restore_settings(self, s: QSettings) -> None:
        self.passage_row.restore_settings(s, DEFAULT_LENGTH)

    def save_settings(self, s: QSettings) -> None:
        self.passage_row.save_settings(s)
