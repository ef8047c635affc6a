"""The Runs panel: every recorded training run in a sortable, filterable table.

A ``RunsModel`` (QAbstractTableModel) holds the store's run records; a QSortFilterProxyModel sorts
on raw values (``SORT_ROLE``) and filters on any column's text. Ticking a run's box asks for its
curves to be overlaid on the loss plot; double-click opens its model; the context menu renames and
deletes. The panel only renders and forwards intents: the controller owns the store.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from charlstm_core.runs import differing_keys
from charlstm_core.training import measures
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..widgets import fmt
from ..widgets.plain import message_box, plain, tip

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
STATUS_COLOURS = {"crashed": "#b00020", "diverged": "#b00020", "running": "#1f6f1f"}


def _num(value: Any) -> float:
    """A sort key that puts unknown values last in ascending order."""
    if value is None:
        return math.inf
    value = float(value)
    return value if math.isfinite(value) else math.inf


def _file_name(path: str | None) -> str:
    return os.path.basename(path) if path else "—"


def _date(ts: float | None) -> str:
    return "—" if not ts else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@dataclass(frozen=True)
class Column:
    header: str
    text: Callable[[Any], str]
    key: Callable[[Any], Any]
    tip: str


COLUMNS: tuple[Column, ...] = (
    Column("Name", lambda r: r.name, lambda r: r.name.lower(), "Tick runs to overlay their curves"),
    Column("Text", lambda r: r.text_name, lambda r: r.text_name.lower(), "The training text"),
    Column(
        "Model file",
        lambda r: _file_name(r.model_path),
        lambda r: _file_name(r.model_path).lower(),
        "The file the run's model was saved to (hover a row for its folder); a run is named "
        "after it when saved, unless you named the run",
    ),
    Column(
        "Layers × hidden",
        lambda r: f"{r.model.get('num_layers', '?')} × {r.model.get('hidden_size', '?')}",
        lambda r: _num(r.model.get("num_layers")) * 1e5 + _num(r.model.get("hidden_size")),
        "Stacked LSTM layers × memory cells per layer",
    ),
    Column("Steps", lambda r: f"{r.steps:,}", lambda r: r.steps, "Optimizer steps trained"),
    Column(
        "Duration",
        lambda r: fmt.duration(r.duration_s),
        lambda r: _num(r.duration_s),
        f"The run's duration: {measures.DURATION_MEANS}",
    ),
    Column(
        "Best val",
        lambda r: fmt.loss(r.best_val_loss),
        lambda r: _num(r.best_val_loss),
        "Best validation loss (nats per character; lower is better)",
    ),
    Column(
        "Chars/s",
        lambda r: fmt.count(r.chars_per_sec) if r.chars_per_sec else "—",
        lambda r: _num(r.chars_per_sec),
        f"The run's chars/s: {measures.CHARS_PER_SEC_MEANS}",
    ),
    Column("Date", lambda r: _date(r.started), lambda r: r.started or 0.0, "When it began"),
    Column(
        "Host",
        lambda r: r.host or "—",
        lambda r: (r.host or "").lower(),
        "The computer that trained it (a sweep on a Dask cluster trains on its workers)",
    ),
    Column("Status", lambda r: r.status, lambda r: r.status, "running, finished, stopped, …"),
)


class RunsModel(QAbstractTableModel):
    """Rows are the store's run records; the Name column carries the overlay tick box."""

    checked_changed = Signal(list)  # run ids ticked, in ticking order
    renamed = Signal(object, str)  # run id, new name (edited in place)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[Any] = []
        self._keys: list[tuple] = []
        self.checked: list[Any] = []
        self.best: Any = None  # a run id shown in bold (a sweep's best point)

    def set_runs(self, runs: Sequence[Any]) -> None:
        self.beginResetModel()
        self.runs = list(runs)
        # sort keys computed once: sorting 1,000 rows asks for them ~20,000 times
        self._keys = [tuple(c.key(r) for c in COLUMNS) for r in self.runs]
        ids = {r.id for r in self.runs}
        dropped = [i for i in self.checked if i not in ids]
        self.checked = [i for i in self.checked if i in ids]
        self.endResetModel()
        if dropped:
            self.checked_changed.emit(list(self.checked))

    def set_checked(self, ids: Iterable[Any]) -> None:
        known = {r.id for r in self.runs}
        new = [i for i in dict.fromkeys(ids) if i in known]
        if new != self.checked:
            self.checked = new
            self._repaint_column(0)
            self.checked_changed.emit(list(new))

    def set_best(self, run_id: Any) -> None:
        self.best = run_id
        self._repaint_column(0)

    def run_at(self, row: int) -> Any:
        return self.runs[row]

    def _repaint_column(self, column: int) -> None:
        if self.runs:
            self.dataChanged.emit(self.index(0, column), self.index(len(self.runs) - 1, column))

    # --- QAbstractTableModel ------------------------------------------------------------------
    def rowCount(self, parent: Index = _ROOT) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent: Index = _ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section].header
            if role == Qt.ItemDataRole.ToolTipRole:
                return COLUMNS[section].tip
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == 0:
            f |= Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable
        return f

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == SORT_ROLE:  # first: the proxy's sort asks for little else
            return self._keys[index.row()][index.column()]
        if not index.isValid():
            return None
        run, col = self.runs[index.row()], COLUMNS[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return col.text(run)
        if role == RUN_ID_ROLE:
            return run.id
        if role == Qt.ItemDataRole.CheckStateRole and index.column() == 0:
            checked = run.id in self.checked
            return Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [run.model_path or "No model file recorded", run.message or ""]
            return tip("\n".join(line for line in lines if line))
        if role == Qt.ItemDataRole.ForegroundRole and col.header == "Status":
            colour = STATUS_COLOURS.get(run.status)
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.FontRole and run.id == self.best and self.best is not None:
            font = QFont()
            font.setBold(True)
            return font
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if not index.isValid() or index.column() != 0:
            return False
        run = self.runs[index.row()]
        if role == Qt.ItemDataRole.CheckStateRole:
            on = Qt.CheckState(value) == Qt.CheckState.Checked
            ids = [i for i in self.checked if i != run.id] + ([run.id] if on else [])
            self.set_checked(ids)
            return True
        if role == Qt.ItemDataRole.EditRole:
            name = str(value).strip()
            if name and name != run.name:
                self.renamed.emit(run.id, name)
            return bool(name)
        return False


class RunsFilter(QSortFilterProxyModel):
    """Sorts on raw values (numbers, lower-case text: compared by Qt, not in Python) and keeps
    the rows where any column contains the filter text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)


class RunsPanel(QWidget):
    """The table, its filter and the buttons; the window connects the intents."""

    open_requested = Signal(object)  # run record
    rename_requested = Signal(object, str)  # run id, new name
    delete_requested = Signal(object, bool)  # run record, also delete its model file
    overlay_changed = Signal(list)  # run ids ticked
    compare_requested = Signal(list)  # run ids ticked
    sweep_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = RunsModel(self)
        self.proxy = RunsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMNS.index(_col("Date")), Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        fm = self.table.fontMetrics()  # room for typical values (not measured row by row: fast)
        typical = (
            "lr=0.005 hidden=128 ✓",
            "tinyshakespeare.txt",
            "tinyshakespeare-20261231.npz",
            "Layers × hidden",
            "100,000",
        )
        typical += ("1 h 00 min", "Best val ", "Chars/s ", "2026-12-31 23:59", "finished")
        for i, text in enumerate(typical):
            header.resizeSection(i, fm.horizontalAdvance(text) + 24)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(self._double_clicked)

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter runs (name, text, status…)")
        self.filter.setClearButtonEnabled(True)
        self.filter.setToolTip("Show only the runs whose row contains this text.")
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.compare = QPushButton("Compare &settings")
        self.compare.setToolTip("Show the settings that differ between the ticked runs.")
        self.compare.clicked.connect(lambda: self.compare_requested.emit(list(self.model.checked)))
        self.sweep = QPushButton("Try several settings…")
        self.sweep.setToolTip("Train one run per combination of settings and compare them.")
        self.sweep.clicked.connect(self.sweep_requested)
        self.clear = QPushButton("Untick all")
        self.clear.setToolTip("Remove every stored run from the loss plot.")
        self.clear.clicked.connect(lambda: self.model.set_checked([]))
        self.note = plain(QLabel())  # quotes the store's path
        self.note.setWordWrap(True)
        self.note.hide()
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.clear)
        top.addWidget(self.compare)
        top.addWidget(self.sweep)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.note)
        lay.addWidget(self.table, 1)
        self.model.checked_changed.connect(self._checked_changed)
        self.model.renamed.connect(self.rename_requested)
        self._checked_changed([])

    # ---------------------------------------------------------------- content
    def set_runs(self, runs: Sequence[Any]) -> None:
        self.model.set_runs(runs)

    def show_note(self, text: str) -> None:
        """A line above the table (why the store is unavailable); empty hides it."""
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def run(self, run_id: Any) -> Any:
        return next((r for r in self.model.runs if r.id == run_id), None)

    def _checked_changed(self, ids: list) -> None:
        self.compare.setEnabled(len(ids) >= 2)
        self.clear.setEnabled(bool(ids))
        self.overlay_changed.emit(ids)

    def _run_at(self, proxy_index: QModelIndex) -> Any:
        return self.model.run_at(self.proxy.mapToSource(proxy_index).row())

    # ---------------------------------------------------------------- intents
    def _double_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.open_requested.emit(self._run_at(index))

    def _context_menu(self, pos: Any) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        run = self._run_at(index)
        menu = QMenu(self)
        menu.addAction("&Open Model", lambda: self.open_requested.emit(run)).setEnabled(
            bool(run.model_path)
        )
        ticked = run.id in self.model.checked
        menu.addAction(
            "&Hide Curve" if ticked else "&Show Curve on the Plot",
            lambda: self.model.set_checked(
                [i for i in self.model.checked if i != run.id] + ([] if ticked else [run.id])
            ),
        )
        menu.addSeparator()
        menu.addAction("&Rename…", lambda: self.rename(run))
        menu.addAction("&Delete…", lambda: self.delete(run))
        menu.popup(self.table.viewport().mapToGlobal(pos))
        self._menu = menu  # keeps it alive while shown (and lets tests reach it)

    def rename(self, run: Any) -> None:
        name = self.ask_name(run)
        if name and name.strip() and name.strip() != run.name:
            self.rename_requested.emit(run.id, name.strip())

    def delete(self, run: Any) -> None:
        answer = self.ask_delete(run)
        if answer is not None:
            self.delete_requested.emit(run, answer)

    # ---------------------------------------------------------------- questions (tests replace)
    def ask_name(self, run: Any) -> str | None:
        name, ok = QInputDialog.getText(self, "Rename run", "Name:", text=run.name)
        return name if ok else None

    def ask_delete(self, run: Any) -> bool | None:
        """None: keep the run; False: delete the record only; True: its model file too."""
        box = message_box(
            QMessageBox.Icon.Question,
            "Delete run",
            f"Delete the run “{run.name}” and its curves from the list?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        also = QCheckBox("Also delete its model file")
        also.setToolTip(tip(run.model_path or ""))
        also.setEnabled(bool(run.model_path))
        box.setCheckBox(also)
        if box.exec() != QMessageBox.StandardButton.Yes:
            return None
        return also.isChecked()


def _col(header: str) -> Column:
    return next(c for c in COLUMNS if c.header == header)


# the settings that choose which characters a run is validated on
# (charlstm_core.files.text.split_ids):
# runs that differ in one of them report validation losses over different characters
VALIDATION_KEYS = ("text", "val_fraction", "val_split", "eval_max_chars")


def validation_note(keys: Sequence[str]) -> str:
    """A warning when the differing ``keys`` change what the validation loss is measured on."""
    differ = [k for k in VALIDATION_KEYS if k in keys]
    if not differ:
        return ""
    return (
        f"These runs were validated on different characters ({', '.join(differ)} "
        f"{'differs' if len(differ) == 1 else 'differ'}), so "
        "their validation losses are not directly comparable: a lower one need not be the "
        "better model. To compare, train them with the same text and validation settings."
    )


class CompareDialog(QDialog):
    """One column per run, one row per setting that differs between them."""

    def __init__(
        self, names: Sequence[str], settings: Sequence[dict[str, Any]], parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare settings")
        self.keys = differing_keys(settings)
        self.table = QTableWidget(len(self.keys), len(names))
        self.table.setHorizontalHeaderLabels(list(names))
        self.table.setVerticalHeaderLabels(self.keys)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for i, key in enumerate(self.keys):
            for j, s in enumerate(settings):
                value = s.get(key)
                self.table.setItem(i, j, QTableWidgetItem("—" if value is None else f"{value}"))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        intro = QLabel(
            f"{len(self.keys)} setting(s) differ between these {len(names)} runs; "
            "every other setting is the same."
            if self.keys
            else f"These {len(names)} runs used exactly the same settings."
        )
        self.note = QLabel(validation_note(self.keys))
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #b00020;")
        self.note.setVisible(bool(self.note.text()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.note)
        lay.addWidget(self.table, 1)
        lay.addWidget(buttons)
        note_h = 80 if self.note.text() else 0
        self.resize(min(900, 200 + 140 * len(names)), min(680, 120 + note_h + 28 * len(self.keys)))
