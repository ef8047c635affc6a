"""Cyclic garbage is collected in the GUI thread only.

Python's cyclic collector runs in whichever thread allocates when a generation's count passes its
threshold. In this app that is often a worker thread: the trainer, a model being loaded, a passage
being analysed. A cycle that holds a Qt object (a pyqtgraph line removed from the plot, with its
label) is then destroyed in that worker: Qt's destructor takes the object's signal-slot lock and
PySide asks for the GIL to disconnect, while the GUI thread holds the GIL and waits for the same
lock in ``connect()``. Neither ever goes on. CI saw it as a hang, the GUI thread in pyqtgraph's
``_updateView`` and a model load in ``ast.literal_eval``; ``tests/gui/test_gui_gc.py`` shows the
collection moving to the GUI thread.

So while a :class:`GuiThreadCollector` runs, automatic collection is off and a timer in the GUI
thread collects the generations whose counts passed the thresholds Python would have used
(pyqtgraph's ``GarbageCollector`` idea, with a way to stop it). Reference counting still frees
everything that is not in a cycle, in any thread, at once.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500  # how often the GUI thread looks at the collector's counts


class GuiThreadCollector(QObject):
    """Switch automatic collection off and collect from a timer of the thread that creates it."""

    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self.threshold = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.collect)
        self._timer.start(interval_ms)

    def collect(self) -> int:
        """Collect the oldest generation due, as the interpreter would; the objects found."""
        due = -1
        counts = gc.get_count()
        for generation, threshold in enumerate(self.threshold):
            if counts[generation] <= threshold:
                break
            due = generation
        return gc.collect(due) if due >= 0 else 0

    def stop(self) -> None:
        """Stop the timer and give collection back to the interpreter (if it had it before)."""
        self._timer.stop()
        if self._was_enabled:
            gc.enable()


_installed: GuiThreadCollector | None = None


def collect_in_gui_thread(app: QObject) -> GuiThreadCollector:
    """The application's collector, started once, owned by ``app`` (call from the GUI thread)."""
    global _installed
    if _installed is None:
        _installed = GuiThreadCollector(parent=app)
    return _installed
