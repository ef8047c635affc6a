"""Fixtures of the GUI tests: offscreen Qt, a private runtime dir, no QThread left running, a
strict state machine.

The environment is set here, before anything imports Qt, so the tests never need a display.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ["QT_QPA_PLATFORM"] = "offscreen"
# an illegal move of the app's state machine raises here, where a test sees it (the field logs it)
os.environ["CHARLSTM_STRICT_STATES"] = "1"
_runtime = tempfile.mkdtemp(prefix="charlstm-xdg-")
os.chmod(_runtime, 0o700)
os.environ["XDG_RUNTIME_DIR"] = _runtime
atexit.register(shutil.rmtree, _runtime, ignore_errors=True)

import gc  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QCoreApplication, QSettings, QThread  # noqa: E402

from charlstm_gui.gui_gc import GuiThreadCollector  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """Each test gets its own QSettings file, so tests never read a user's real settings."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    yield


@pytest.fixture(autouse=True)
def _collect_in_gui_thread(qapp):
    """As in the app (``charlstm_gui.gui_gc``): cycles holding Qt objects are never collected in a
    worker thread, where destroying them can deadlock with the GUI thread."""
    collector = GuiThreadCollector()
    yield collector
    collector.stop()


@pytest.fixture(autouse=True)
def _no_dangling_qthreads(qapp):
    """Fail a test that leaves a QThread running (napari's ``_dangling_qthreads`` idea)."""
    yield
    QCoreApplication.processEvents()
    gc.collect()
    main = qapp.thread()
    running = [
        t for t in gc.get_objects() if isinstance(t, QThread) and t is not main and _is_running(t)
    ]
    if running:
        for t in running:
            t.quit()
            t.wait(5000)
        pytest.fail(f"{len(running)} QThread(s) still running after the test")


def _is_running(thread: QThread) -> bool:
    try:
        return thread.isRunning()
    except RuntimeError:  # the C++ object is already gone
        return False


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The real main window with tiny settings; unsaved-work questions answer "discard"."""
    from charlstm_gui.window import MainWindow

    from .helpers import TINY

    w = MainWindow()
    qtbot.addWidget(w)
    monkeypatch.setattr(w, "ask_unsaved", lambda context: "discard")
    w.form.set_values({**TINY, "autosave_dir": str(tmp_path / "autosave")})
    yield w
    w.ctl.shutdown()
