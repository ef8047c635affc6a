"""The Inspect tab: what the model thinks of a passage, shown as coloured text.

A passage (the validation text from a movable start, the user's own text, or the latest generated
text) is read by the model (``core.inspect.analyse``) off the GUI thread, on a snapshot of the
weights taken between two training steps, at every evaluation while training runs, or on the
opened model. The view then colours each character by the model's surprise, −log2 p (bits), or by
one unit's cell value tanh(c) or hidden value h on a diverging map; hovering a character shows the
five likeliest next characters. Units are found automatically (correlation with simple detectors)
or by example (select a range: LSTMVis's select-and-match); a scatter shows gate saturation.
A time-lapse slider replays the surprise colouring at every evaluation so far: one (N-1,) array of
bits per evaluation is kept, never weights.

Rendering: the passage is plain text in a QPlainTextEdit; colours come from a QSyntaxHighlighter
that reads one small array of colour-level indices, so recolouring (another unit, another
evaluation) is one pass over the blocks with one ``setFormat`` per run of equal colour, never a
document rebuild (``benchmarks/bench_gui_latency.py --inspect`` measures the event loop with it).
"""

from __future__ import annotations

import contextlib
import html
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QKeyEvent,
    QLinearGradient,
    QPainter,
    QSyntaxHighlighter,
    QTextCharFormat,
)
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
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QToolTip,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import CharLSTMError
from core.inspect_html import MAX_BITS, visible

from .state import State
from .worker import describe_exception

SURPRISE_MAX_BITS = MAX_BITS  # the surprise colour map saturates here, as in the HTML page
SURPRISE_LEVELS = int(2 * MAX_BITS) + 1  # colour levels of the surprise map (half a bit each)
VALUE_LEVELS = 21  # colour levels of the diverging map over [-1, 1]
DEFAULT_LENGTH = 2000  # characters of the default passage
MAX_LENGTH = 10_000  # longest passage the view analyses
SURPRISE_STOPS = ((0.0, (255, 255, 255)), (0.3, (255, 236, 150)), (0.6, (248, 160, 80)),
                  (1.0, (190, 30, 45)))  # fmt: skip
DIVERGING_STOPS = ((0.0, (67, 147, 195)), (0.5, (255, 255, 255)), (1.0, (214, 96, 77)))
MATCH_COLOUR = QColor(0, 150, 70)
SOURCES = ("Validation text", "Your text", "Latest generated text")
MODES = ("Surprise (bits)", "Cell value tanh(c)", "Hidden value h")
MODE_KIND = {1: "c", 2: "h"}


def ramp(stops: tuple[tuple[float, tuple[int, int, int]], ...], n: int) -> list[QColor]:
    """``n`` colours evenly spaced along a piecewise-linear colour map."""
    xs = np.array([s for s, _ in stops])
    rgb = np.array([c for _, c in stops], float)
    t = np.linspace(0.0, 1.0, n)
    cols = np.stack([np.interp(t, xs, rgb[:, j]) for j in range(3)], axis=1)
    return [QColor(*(int(round(v)) for v in row)) for row in cols]


def surprise_levels(bits: np.ndarray) -> np.ndarray:
    """Colour level (0 .. SURPRISE_LEVELS-1) of each surprise in bits; NaN (no prediction) → -1."""
    scaled = np.clip(np.nan_to_num(bits, nan=-1.0) / SURPRISE_MAX_BITS, 0.0, 1.0)
    levels = np.rint(scaled * (SURPRISE_LEVELS - 1)).astype(np.int16)
    levels[np.isnan(bits)] = -1
    return levels


def value_levels(values: np.ndarray) -> np.ndarray:
    """Colour level (0 .. VALUE_LEVELS-1) of each value in [-1, 1], 0 meaning -1."""
    scaled = (np.clip(values, -1.0, 1.0) + 1.0) / 2.0
    return np.rint(scaled * (VALUE_LEVELS - 1)).astype(np.int16)


def display_text(text: str) -> tuple[str, np.ndarray]:
    """The passage as shown, and (U,) the character index of each UTF-16 unit of it (-1: none).

    A newline is shown as a visible ↵ (which carries the newline's colour) before the line break;
    other control characters become their Unicode control pictures, so that every character of
    the passage can be seen, coloured and hovered. Qt counts positions in UTF-16 units.
    """
    parts: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        o = ord(ch)
        if ch == "\n":
            parts.append("↵\n")
            index += (i, -1)
        elif o < 32 and ch != "\t":
            parts.append(chr(0x2400 + o))
            index.append(i)
        elif ch in "\x7f\x85\u2028\u2029":
            parts.append("¶")
            index.append(i)
        else:
            parts.append(ch)
            index += (i, i) if o > 0xFFFF else (i,)
    return "".join(parts), np.array(index, np.int32)


class PassageColours(QSyntaxHighlighter):
    """Colours a document from ``levels``: (U,) format index per UTF-16 unit, -1 = plain."""

    def __init__(self, document: Any) -> None:
        super().__init__(document)
        self.levels = np.empty(0, np.int16)
        self.formats: list[QTextCharFormat] = []

    def set_levels(self, levels: np.ndarray, formats: list[QTextCharFormat]) -> None:
        self.levels, self.formats = levels, formats
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt API)
        start = self.currentBlock().position()
        seg = self.levels[start : start + len(text)]
        if seg.size == 0:
            return
        cuts = [0, *(np.flatnonzero(np.diff(seg)) + 1).tolist(), seg.size]
        for a, b in itertools.pairwise(cuts):
            k = int(seg[a])
            if k >= 0:
                self.setFormat(a, b - a, self.formats[k])


class PassageText(QPlainTextEdit):
    """The coloured passage: read-only; a tooltip per character; Up/Down keys step the unit."""

    step_unit = Signal(int)  # +1 / -1: Alt+Up / Alt+Down (plain arrows move the caret)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setPlaceholderText("Train a model, or open one, to see what it thinks of a passage.")
        self.colours = PassageColours(self.document())
        self.index = np.empty(0, np.int32)  # UTF-16 unit → character of the passage
        self.tooltip_for: Callable[[int], str] = lambda i: ""

    def show_text(self, text: str) -> None:
        shown, self.index = display_text(text)
        self.colours.set_levels(np.empty(0, np.int16), [])
        self.setPlainText(shown)

    def char_at(self, pos: QPoint) -> int:
        """Index in the passage of the character under ``pos`` (viewport coordinates), or -1."""
        cursor = self.cursorForPosition(pos)
        p = cursor.position()
        rect = self.cursorRect(cursor)
        if pos.x() < rect.left():
            p -= 1
        if not rect.top() <= pos.y() <= rect.bottom() or not 0 <= p < self.index.size:
            return -1
        return int(self.index[p])

    def tooltip_at(self, pos: QPoint) -> str:
        i = self.char_at(pos)
        return self.tooltip_for(i) if i >= 0 else ""

    def selected_chars(self) -> tuple[int, int]:
        """[start, end) of the selection in passage characters ((0, 0) when none)."""
        c = self.textCursor()
        a, b = c.selectionStart(), c.selectionEnd()
        if a == b or self.index.size == 0:
            return 0, 0
        ids = self.index[a:b]
        ids = ids[ids >= 0]
        return (int(ids.min()), int(ids.max()) + 1) if ids.size else (0, 0)

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.ToolTip:
            tip = self.tooltip_at(event.pos())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.viewport())
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().viewportEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.modifiers() & Qt.KeyboardModifier.AltModifier and event.key() in (
            Qt.Key.Key_Up,
            Qt.Key.Key_Down,
        ):
            self.step_unit.emit(1 if event.key() == Qt.Key.Key_Up else -1)
            return
        super().keyPressEvent(event)


class Legend(QWidget):
    """A colour bar with its two end labels and a middle one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colours: list[QColor] = []
        self.labels = ("", "", "")
        self.setMinimumSize(220, 30)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_scale(self, colours: list[QColor], labels: tuple[str, str, str], tip: str) -> None:
        self.colours, self.labels = colours, labels
        self.setToolTip(tip)
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        if not self.colours:
            return
        p = QPainter(self)
        w, h = self.width() - 2, self.height()
        bar = h // 2 - 1
        grad = QLinearGradient(1, 0, w, 0)
        n = len(self.colours)
        for i, col in enumerate(self.colours):
            grad.setColorAt(i / (n - 1), col)
        p.fillRect(1, 1, w, bar, grad)
        p.setPen(self.palette().windowText().color())
        p.drawRect(1, 1, w - 1, bar)
        flags = Qt.AlignmentFlag.AlignVCenter
        p.drawText(1, bar + 2, w, h - bar - 2, flags | Qt.AlignmentFlag.AlignLeft, self.labels[0])
        p.drawText(1, bar + 2, w, h - bar - 2, flags | Qt.AlignmentFlag.AlignHCenter,
                   self.labels[1])  # fmt: skip
        p.drawText(1, bar + 2, w, h - bar - 2, flags | Qt.AlignmentFlag.AlignRight, self.labels[2])
        p.end()


@dataclass(frozen=True, eq=False)
class InspectResult:
    """One analysis of a passage by one model, made off the GUI thread."""

    step: int  # training step of the model (0 for a model without training state)
    source: str  # which model, in words
    analysis: Any  # core.inspect.Analysis
    ranking: dict[str, dict[str, list[Any]]]  # kind ("c", "h") → detector → [UnitScore]
    saturation: np.ndarray  # (L, 3, H, 2) gate saturation fractions


@dataclass(frozen=True)
class Failure:
    """An unexpected error of an analysis, reported by the GUI thread."""

    traceback: str


def analyse_passage(model: Any, text: str, source: str, beside_training: bool) -> Any:
    """Everything the view shows of ``text`` (runs on a worker thread). Returns an
    ``InspectResult``, the message of a problem the user can fix (a str), or a ``Failure``."""
    from core import inspect, parallel

    blas = parallel.single_threaded_blas() if beside_training else contextlib.nullcontext()
    try:
        with blas:  # beside a running training, leave it the cores (as generation does)
            a = inspect.analyse(model, text)
            signals = inspect.detectors(text)
            ranking = {kind: inspect.rank_units(a, signals, kind, top=3) for kind in ("c", "h")}
            saturation = inspect.gate_saturation(a)
    except CharLSTMError as exc:
        return str(exc)
    except MemoryError:
        return "Not enough memory to analyse this passage: choose a shorter one."
    except Exception as exc:  # a bug: the view must not wait for it forever
        return Failure(describe_exception(exc))
    step = model.train.step if getattr(model, "train", None) is not None else 0
    return InspectResult(step, source, a, ranking, saturation)


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
        self._queue: deque[Any] = deque(maxlen=16)  # models waiting while one analysis runs
        self._running = 0  # serial of the analysis running, 0 when none
        self._serial = 0
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
        self.source = QComboBox()
        self.source.addItems(SOURCES)
        self.source.setToolTip(
            "Which passage the model reads: the validation text (never trained on), text you "
            "type or paste, or the text last written in the Generate tab."
        )
        self.start = QSpinBox()
        self.start.setGroupSeparatorShown(True)
        self.start.setSingleStep(500)
        self.start.setToolTip("Where in the validation text the passage starts (a character).")
        self.length = QSpinBox()
        self.length.setRange(100, MAX_LENGTH)
        self.length.setSingleStep(500)
        self.length.setGroupSeparatorShown(True)
        self.length.setValue(DEFAULT_LENGTH)
        self.length.setToolTip("How many characters of the validation text the passage holds.")
        self.analyse_button = QPushButton("&Analyse")
        self.analyse_button.setToolTip("Let the current model read the passage now.")
        self.live = QCheckBox("&Live")
        self.live.setChecked(True)
        self.live.setToolTip(
            "While training, read the passage again with a copy of the weights at every "
            "evaluation (training does not pause)."
        )
        self.mode = QComboBox()
        self.mode.addItems(MODES)
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
        self.mean = QLabel("")
        self.mean.setToolTip("The passage's mean surprise: bits per character (lower is better).")
        self.play = QPushButton("▶")
        self.play.setCheckable(True)
        self.play.setMaximumWidth(36)
        self.play.setToolTip("Replay the surprise colouring evaluation by evaluation.")
        self.time = QSlider(Qt.Orientation.Horizontal)
        self.time.setRange(0, 0)
        self.time.setPageStep(1)
        self.time.setToolTip(
            "Time-lapse: the surprise colouring of this passage at each evaluation so far."
        )
        self.time_label = QLabel("no evaluations yet")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.own_text = QPlainTextEdit()
        self.own_text.setPlaceholderText(
            "Type or paste a passage here: the model reads it when you pause."
        )
        self.own_text.setMaximumHeight(90)
        self.own_text.setVisible(False)
        self.text = PassageText()
        self.text.tooltip_for = self.tooltip

        self.found = QTreeWidget()
        self.found.setHeaderLabels(["Detector / unit", "r"])
        self.found.setToolTip(
            "For each simple fact about the text, the units whose activation follows it best "
            "(Pearson r over the passage). Click a unit to colour the passage by it."
        )
        self.found.setColumnWidth(0, 210)
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
        by_example = QWidget()
        ex = QVBoxLayout(by_example)
        row = QHBoxLayout()
        row.addWidget(QLabel("On at ≥"))
        row.addWidget(self.threshold)
        row.addWidget(self.match_button, 1)
        ex.addLayout(row)
        ex.addWidget(self.match_label)
        ex.addWidget(self.match_units, 1)
        self.gates = pg.PlotWidget(background="w")
        gp = self.gates.getPlotItem()
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
            for name, colour in (
                ("input", (40, 110, 200, 170)),
                ("forget", (220, 60, 40, 170)),
                ("output", (40, 160, 80, 170)),
            )
        ]
        self.gates.setToolTip(
            "Each dot is one unit's gate in the chosen layer: how often it is nearly shut "
            "(left) or nearly open (right) on this passage. Forget gates far up the left axis "
            "keep their memory: these units can count and track long-range structure."
        )
        self.side = QTabWidget()
        self.side.addTab(self.found, "Found cells")
        self.side.addTab(by_example, "By example")
        self.side.addTab(self.gates, "Gates")

        top = QHBoxLayout()
        top.addWidget(QLabel("Passage:"))
        top.addWidget(self.source)
        self.start_label = QLabel("from character")
        top.addWidget(self.start_label)
        top.addWidget(self.start)
        self.length_label = QLabel("length")
        top.addWidget(self.length_label)
        top.addWidget(self.length)
        top.addWidget(self.analyse_button)
        top.addWidget(self.live)
        top.addStretch(1)
        top.addWidget(self.mean)
        colour = QHBoxLayout()
        colour.addWidget(QLabel("Colour by:"))
        colour.addWidget(self.mode)
        colour.addWidget(QLabel("layer"))
        colour.addWidget(self.layer)
        colour.addWidget(QLabel("unit"))
        colour.addWidget(self.unit)
        colour.addWidget(self.unit_slider, 1)
        colour.addWidget(self.legend)
        lapse = QHBoxLayout()
        lapse.addWidget(QLabel("Time-lapse:"))
        lapse.addWidget(self.play)
        lapse.addWidget(self.time, 1)
        lapse.addWidget(self.time_label)
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
        lay.addLayout(top)
        lay.addLayout(colour)
        lay.addLayout(lapse)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        self._set_unit_controls(False)
        self._play_timer = QTimer(self)
        self._play_timer.setInterval(400)
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
        self.unit.valueChanged.connect(self.unit_slider.setValue)
        self.unit_slider.valueChanged.connect(self.unit.setValue)
        self.unit.valueChanged.connect(self._on_unit)
        self.text.step_unit.connect(lambda d: self.unit.setValue(self.unit.value() + d))
        self.time.valueChanged.connect(self._on_time)
        self.play.toggled.connect(self._on_play)
        self._play_timer.timeout.connect(self._play_step)
        self.found.itemClicked.connect(self._on_found_clicked)
        self.match_button.clicked.connect(self.match_selection)
        self.match_units.itemClicked.connect(self._on_match_clicked)
        self.threshold.valueChanged.connect(self._rematch)
        self.side.currentChanged.connect(self._show_gates)
        self.live.toggled.connect(self.ctl.set_inspect_live)
        self.ctl.set_inspect_live(self.live.isChecked())

    # ---------------------------------------------------------------- the passage
    def _split_fraction(self) -> float:
        cfg = self.ctl.train_config
        return cfg.val_fraction if cfg is not None else self._val_fraction()

    def _validation_ids(self) -> tuple[np.ndarray, str]:
        corpus = self.ctl.corpus
        val = corpus.split(self._split_fraction())[1]
        if val.size >= 2:
            return val, "validation text"
        return corpus.ids, "text (there is no validation part)"

    def passage_text(self) -> str:
        """The passage the current source gives, at most MAX_LENGTH characters."""
        src = self.source.currentIndex()
        if src == 0:
            if self.ctl.corpus is None:
                return ""
            ids, _ = self._validation_ids()
            a = min(self.start.value(), max(0, ids.size - 2))
            return self.ctl.corpus.vocab.decode(ids[a : a + self.length.value()])
        text = self.own_text.toPlainText() if src == 1 else self._generated_text()
        return text[:MAX_LENGTH]

    def _update_start_range(self) -> None:
        if self.ctl.corpus is None:
            self.start.setRange(0, 0)
            return
        ids, what = self._validation_ids()
        self.start.setRange(0, max(0, ids.size - self.length.value()))
        self.start.setToolTip(
            f"Where in the {what} the passage starts ({ids.size:,} characters in all)."
        )

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
            self._say(self._empty_hint())

    def _empty_hint(self) -> str:
        src = self.source.currentIndex()
        if src == 0:
            return "Open a text (File menu) to read a passage of its validation part."
        if src == 1:
            return "Type or paste a passage above; the model reads it when you pause."
        return "Generate some text first (Generate tab)."

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

    def _analyse(self, model: Any) -> None:
        if self._running:
            self._queue.append(model)
            return
        text = self.passage
        if not text:
            return
        if len(text) < 2:
            self._say("The passage needs at least 2 characters.")
            return
        self._serial += 1
        self._running = self._serial
        step = model.train.step if model.train is not None else 0
        source = f"the model at step {step:,}" if step else "the model"
        beside = self.ctl.state.value in ("starting", "training")
        self._say(f"Reading the passage with {source}…")
        serial = self._serial
        self.ctl.run_task(
            lambda: analyse_passage(model, text, source, beside),
            lambda result: self._on_analysed(serial, result),
        )

    def _on_analysed(self, serial: int, result: Any) -> None:
        if serial != self._running:  # a newer analysis was asked for meanwhile
            return
        self._running = 0
        if isinstance(result, Failure):
            self._say("The analysis failed (see the error report).")
            self.ctl.internal_error.emit(result.traceback)
        elif isinstance(result, str):
            self._say(result)
        elif result.analysis.text == self.passage:
            self._show_result(result)
        elif self.passage and not self._queue:  # the passage changed meanwhile: read it anew
            self._queue.append(None)
        if self._queue:
            model = self._queue.popleft()
            if model is None:
                self.analyse_now()
            else:
                self._analyse(model)

    def _show_result(self, result: InspectResult) -> None:
        a = result.analysis
        self.result = result
        self._values = {}
        L, _, H = a.h.shape
        self.layer.setRange(1, L)
        self.unit.setRange(0, H - 1)
        self.unit_slider.setRange(0, H - 1)
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
        index = self.text.index
        if levels.size == 0 or index.size == 0:
            self.text.colours.set_levels(np.empty(0, np.int16), [])
            return
        chars = np.maximum(index, 0)
        per_unit = np.where(index >= 0, levels[chars], -1)
        formats = [self._format(col, False) for col in colours]
        if self._match_mask.size == levels.size and self._match_mask.any():
            n = len(colours)  # marked characters use the formats n .. 2n (2n: marked, uncoloured)
            marked = (index >= 0) & self._match_mask[chars]
            per_unit = np.where(marked, np.where(per_unit >= 0, per_unit + n, 2 * n), per_unit)
            formats += [self._format(col, True) for col in colours] + [self._format(None, True)]
        self.text.colours.set_levels(per_unit.astype(np.int16), formats)

    def _format(self, colour: QColor | None, marked: bool) -> QTextCharFormat:
        f = QTextCharFormat()
        if colour is not None:
            f.setBackground(colour)
            if colour.lightness() < 120:
                f.setForeground(QColor(255, 255, 255))
        if marked:
            f.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
            f.setUnderlineColor(MATCH_COLOUR)
            f.setFontWeight(700)
            if colour is None or colour.lightness() >= 120:
                f.setForeground(MATCH_COLOUR.darker(140))
        return f

    def _show_scale(self) -> None:
        kind = self.mode_kind()
        if kind is None:
            self.legend.set_scale(
                self._surprise_colours,
                ("0 bits", f"{SURPRISE_MAX_BITS / 2:g}", f"≥ {SURPRISE_MAX_BITS:g} bits"),
                "Surprise: −log2 of the probability the model gave the character that came. "
                "0 bits: it was sure; 1 bit: a coin flip; "
                f"{SURPRISE_MAX_BITS:g} bits: 1 chance in {2**SURPRISE_MAX_BITS:,.0f}.",
            )
        else:
            label = "tanh(c)" if kind == "c" else "h"
            self.legend.set_scale(
                self._value_colours,
                ("−1", f"0  {label}", "+1"),
                f"The unit's {label} after reading each character: blue negative, red positive.",
            )

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
        self.time.setEnabled(not on and len(self.timelapse) > 1)
        self.play.setEnabled(not on and len(self.timelapse) > 1)

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
        a = r.analysis
        came = self.passage[i]
        if i == 0:
            return (
                f"<b>{html.escape(visible(came))}</b>: the first character; the model reads it "
                "before it predicts anything."
            )
        bits = self.shown_bits()[i - 1]
        p = float(np.exp2(-bits))
        rows = "".join(
            f"<tr><td><code>{html.escape(visible(ch))}</code></td>"
            f"<td align='right'>{prob:.1%}</td></tr>"
            for ch, prob in a.top_chars(i - 1)
        )
        head = f"After “{html.escape(_context(self.passage, i))}” the model expected:"
        text = (
            f"{head}<table>{rows}</table>Came: <b><code>{html.escape(visible(came))}</code></b> "
            f"with probability {p:.2%} ({bits:.2f} bits)"
        )
        if len(self.timelapse) > 1 and self.time.value() != self.time.maximum():
            text += f"<br><i>(probability at step {self.timelapse[self.time.value()][0]:,}; "
            text += "the guesses are the newest model's)</i>"
        kind = self.mode_kind()
        if kind is not None:
            v = self.values(kind)[self.layer.value() - 1, i, self.unit.value()]
            name = "tanh(c)" if kind == "c" else "h"
            text += f"<br>Layer {self.layer.value()} unit {self.unit.value()}: {name} = {v:+.3f}"
        return text

    # ---------------------------------------------------------------- time-lapse
    def _update_time_slider(self, follow: bool = True) -> None:
        n = len(self.timelapse)
        self.time.blockSignals(True)
        self.time.setRange(0, max(0, n - 1))
        if follow:
            self.time.setValue(max(0, n - 1))
        self.time.blockSignals(False)
        self._set_unit_controls(self.mode.currentIndex() != 0)
        self._show_time()

    def _show_time(self) -> None:
        n = len(self.timelapse)
        if n == 0:
            self.time_label.setText("no evaluations yet")
            return
        step, bits = self.timelapse[self.time.value()]
        self.time_label.setText(
            f"step {step:,} · {float(bits.mean()):.2f} bits/char ({self.time.value() + 1} of {n})"
        )

    @Slot(int)
    def _on_time(self, value: int) -> None:
        self._show_time()
        if self.mode_kind() is None:
            self.recolour()

    @Slot(bool)
    def _on_play(self, on: bool) -> None:
        if on:
            if self.time.value() == self.time.maximum():
                self.time.setValue(0)
            self._play_timer.start()
        else:
            self._play_timer.stop()
        self.play.setText("⏸" if on else "▶")

    def _play_step(self) -> None:
        if self.time.value() >= self.time.maximum():
            self.play.setChecked(False)
            return
        self.time.setValue(self.time.value() + 1)

    # ---------------------------------------------------------------- found cells
    def _fill_found(self) -> None:
        from core.inspect import DETECTORS

        if self.result is None:
            return
        kind = self._found_kind = self.mode_kind() or "c"
        ranking = self.result.ranking[kind]
        expanded = {
            self.found.topLevelItem(i).text(0)
            for i in range(self.found.topLevelItemCount())
            if self.found.topLevelItem(i).isExpanded()
        }
        self.found.clear()
        name_kind = "tanh(c)" if kind == "c" else "h"
        shown = (self.mode_kind(), self.layer.value() - 1, self.unit.value())
        for name, description in DETECTORS.items():
            scores = ranking.get(name, [])
            top = QTreeWidgetItem([name, f"{abs(scores[0].r):.2f}" if scores else "—"])
            top.setToolTip(0, description + ("" if scores else " (not in this passage)"))
            for s in scores:
                child = QTreeWidgetItem([f"layer {s.layer + 1} unit {s.unit}", f"{s.r:+.2f}"])
                child.setData(0, Qt.ItemDataRole.UserRole, (kind, s.layer, s.unit))
                child.setToolTip(0, f"Colour the passage by this unit's {name_kind}.")
                top.addChild(child)
            self.found.addTopLevelItem(top)
            top.setExpanded(name in expanded or not expanded)
            for k in range(top.childCount()):  # the unit on show stays selected after a refresh
                if tuple(top.child(k).data(0, Qt.ItemDataRole.UserRole)) == shown:
                    self.found.setCurrentItem(top.child(k))

    @Slot(QTreeWidgetItem, int)
    def _on_found_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        data = item.data(0, Qt.ItemDataRole.UserRole)
        if data:
            self.show_unit(*data)

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
        from core.inspect import match_selection

        a, b = sel
        if b > len(self.passage):
            return
        m = match_selection(self.result.analysis, a, b, self.threshold.value(), kind)
        name = "tanh(c)" if kind == "c" else "h"
        for u in m.units:
            item = QListWidgetItem(
                f"layer {u.layer + 1} unit {u.unit}: {u.inside:+.2f} inside, {u.outside:+.2f} "
                "elsewhere"
            )
            item.setData(Qt.ItemDataRole.UserRole, (kind, u.layer, u.unit))
            self.match_units.addItem(item)
        if not m.units:
            self.match_label.setText(
                f"No unit has {name} ≥ {self.threshold.value():.2f} all through characters "
                f"{a:,}–{b - 1:,} and below it just before and after. Lower the threshold or "
                "select a different stretch."
            )
        else:
            for s, e in m.spans:
                self._match_mask[s:e] = True
            self._match_mask[a:b] = True
            self.match_label.setText(
                f"{len(m.units)} unit(s) are on through characters {a:,}–{b - 1:,}; together "
                f"they are on at {len(m.spans)} other place(s), underlined in green."
            )
        self.match_spans = m.spans
        if apply:
            self.recolour()

    @Slot(QListWidgetItem)
    def _on_match_clicked(self, item: QListWidgetItem) -> None:
        kind, layer, unit = item.data(Qt.ItemDataRole.UserRole)
        self.layer.setValue(layer + 1)
        self.unit.setValue(unit)
        self.recolour()

    # ---------------------------------------------------------------- gates
    def _show_gates(self) -> None:
        """Plot the chosen layer's gate saturation (only while the Gates tab shows: a hidden
        scatter of 3·H points is drawn when the tab is opened)."""
        if self.result is None or self.side.currentWidget() is not self.gates:
            return
        sat = self.result.saturation[self.layer.value() - 1]  # (3, H, 2)
        for g, points in enumerate(self.gate_points):
            points.setData(sat[g, :, 0], sat[g, :, 1])
        title = f"Gate saturation, layer {self.layer.value()}"
        if self.gates.getPlotItem().titleLabel.text != title:
            self.gates.getPlotItem().setTitle(title)

    # ---------------------------------------------------------------- controller → view
    @Slot(int)
    def _on_source(self, index: int) -> None:
        for w in (self.start, self.length, self.start_label, self.length_label):
            w.setVisible(index == 0)
        self.own_text.setVisible(index == 1)
        self.reload_passage()

    def _analyse_clicked(self) -> None:
        if self.passage_text() != self.passage:
            self.reload_passage()
        else:
            self.analyse_now()

    @Slot(object)
    def _on_corpus(self, corpus: Any) -> None:
        self._update_start_range()
        if self.source.currentIndex() == 0:
            self.result = None
            self.reload_passage()

    @Slot(object, str)
    def _on_model(self, model: Any, source: str) -> None:
        """A model was opened, or training ended: read the passage with it."""
        if model is None:
            return
        self._update_start_range()
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
            self._update_start_range()
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
        self.source.setCurrentIndex(s.value("inspect/source", 0, type=int))
        self.length.setValue(s.value("inspect/length", DEFAULT_LENGTH, type=int))
        self.live.setChecked(s.value("inspect/live", True, type=bool))

    def save_settings(self, s: QSettings) -> None:
        s.setValue("inspect/source", self.source.currentIndex())
        s.setValue("inspect/length", self.length.value())
        s.setValue("inspect/live", self.live.isChecked())


def _context(text: str, i: int, width: int = 12) -> str:
    """Up to ``width`` characters before position ``i``, newlines shown as ↵, "…" if cut."""
    a = max(0, i - width)
    shown = text[a:i].replace("\n", "↵").replace("\t", "⇥")
    return ("…" if a > 0 else "") + shown
