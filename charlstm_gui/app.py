"""Start the application: QApplication, error hook, main window, and the built-in text.

``main(argv)`` is the entry point of ``python -m charlstm_gui`` and the ``charlstm-gui`` launcher.
A path given on the command line is opened (a ``.npz`` as a model, anything else as text), so a
file manager's "Open with" works. ``--install-desktop`` / ``--uninstall-desktop`` add or remove the
menu entry; ``--self-test MODEL`` opens MODEL offscreen-friendly and exits (used by CI on the
standalone build).

Paths reach Qt only as valid text: a Linux file name need not be UTF-8 (Python holds such bytes
as lone surrogates), and PySide6 crashed converting one in ``QApplication``'s argv. Qt gets the
arguments it can read; the files to open are taken from ``sys.argv`` itself. SIGTERM (a session
logout), SIGHUP and SIGINT save unsaved training as an autosave file and quit cleanly.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyqtgraph  # noqa: F401  (imported after PySide6 so it binds to it)
from charlstm_core.files.text import display_path
from PySide6.QtCore import QObject, QSocketNotifier, QTimer, qVersion
from PySide6.QtWidgets import QApplication

from . import APP_NAME, DESKTOP_FILE_NAME, ORG_NAME
from .desktop import app_icon, handle_desktop_flags
from .gui_gc import collect_in_gui_thread
from .widgets.dialogs import excepthook

QUIT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")  # those present on this platform are handled


def is_text(arg: str) -> bool:
    """Whether ``arg`` is valid Unicode text (not a file name's undecodable bytes)."""
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def create_app(argv: Sequence[str]) -> QApplication:
    """The QApplication, given only the arguments that are valid text (see the module doc)."""
    app = QApplication.instance() or QApplication([a for a in argv if is_text(a)])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName(DESKTOP_FILE_NAME)
    app.setWindowIcon(app_icon())
    return app  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    code = handle_desktop_flags(argv)
    if code is not None:
        return code
    self_test_path = None
    if "--self-test" in argv:
        i = argv.index("--self-test")
        if i + 1 >= len(argv):
            print("usage: charlstm-gui --self-test MODEL.npz", file=sys.stderr)
            return 2
        self_test_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    created = QApplication.instance() is None
    app = create_app(argv)
    collect_in_gui_thread(app)  # never in a worker thread: see gui_gc
    args = _left_by_qt(argv[1:], app.arguments()[1:]) if created else argv[1:]
    sys.excepthook = excepthook
    from .window import MainWindow

    window = MainWindow()
    window.show()
    if self_test_path is not None:
        return _self_test(app, window, self_test_path)
    install_quit_signals(app, window.save_and_quit)
    paths = [a for a in args if not a.startswith("-")]
    if paths and paths[0].lower().endswith(".npz"):
        QTimer.singleShot(0, window.ctl.use_builtin_text)
        QTimer.singleShot(0, lambda: window.open_model(paths[0]))
    elif paths:
        QTimer.singleShot(0, lambda: window.open_text(paths[0]))
    else:
        QTimer.singleShot(0, window.ctl.use_builtin_text)
    return app.exec()


def _left_by_qt(ours: Sequence[str], left: Sequence[str]) -> list[str]:
    """``ours`` (our arguments, in order) without those Qt consumed (``-platform offscreen``,
    ``-style fusion``...): ``left`` is ``app.arguments()[1:]``, what Qt left of the text ones."""
    rest, i = [], 0
    for arg in ours:
        if not is_text(arg):
            rest.append(arg)  # never shown to Qt
        elif i < len(left) and left[i] == arg:
            rest.append(arg)
            i += 1
    return rest


def install_quit_signals(app: QApplication, on_signal: Any) -> QObject:
    """Make SIGTERM, SIGHUP and SIGINT call ``on_signal(signum)`` in Qt's event loop.

    Python runs a signal handler only between bytecodes, never while Qt waits for events, so the
    C-level handler writes the signal number to a pipe (``signal.set_wakeup_fd``) whose reading
    end a QSocketNotifier watches; its slot runs in the GUI thread and reads which signal came.
    Returns the notifier (kept alive by its parent, ``app``).
    """
    rfd, wfd = os.pipe()
    for fd in (rfd, wfd):
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
    signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    notifier = QSocketNotifier(rfd, QSocketNotifier.Type.Read, app)

    def woken() -> None:
        try:
            data = os.read(rfd, 64)
        except BlockingIOError:
            return
        for signum in dict.fromkeys(data):  # each signal once, in order
            on_signal(signum)

    notifier.activated.connect(woken)
    for name in QUIT_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda signum, frame: None)  # see woken()
    return notifier


def _self_test(app: QApplication, window: Any, path: str) -> int:
    """Open ``path`` through the window's normal open path, print one line and quit.

    Exit 0 and "self-test ok: ..." when the model opened, 1 and the problem otherwise.
    """
    outcome: list[str] = []

    def finish(line: str) -> None:
        if not outcome:
            outcome.append(line)
            app.quit()

    def opened(mf: Any, opened_path: str) -> None:
        c, name = mf.config, display_path(Path(opened_path).name)
        finish(
            f"self-test ok: {name}: {c.num_layers} x {c.hidden_size} LSTM over "
            f"{c.vocab_size} characters; Qt {qVersion()} on {app.platformName()}"
        )

    sys.excepthook = lambda t, e, tb: finish(
        "self-test failed: " + "".join(traceback.format_exception(t, e, tb))
    )
    window.ctl.model_opened.connect(opened)
    window.ctl.message.connect(lambda title, text: finish(f"self-test failed: {title}: {text}"))
    window.ctl.internal_error.connect(lambda tb: finish(f"self-test failed: {tb}"))
    QTimer.singleShot(0, lambda: window.open_model(path))
    QTimer.singleShot(60_000, lambda: finish("self-test failed: no answer within 60 s"))
    app.exec()
    window.ctl.shutdown()
    ok = outcome[0].startswith("self-test ok")
    print(outcome[0], file=sys.stdout if ok else sys.stderr, flush=True)
    return 0 if ok else 1
