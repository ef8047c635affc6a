"""Start the application: QApplication, error hook, main window, and the built-in text.

``main(argv)`` is the entry point of ``python -m charlstm_gui`` and the ``charlstm-gui`` launcher.
A path given on the command line is opened (a ``.npz`` as a model, anything else as text), so a
file manager's "Open with" works. ``--install-desktop`` / ``--uninstall-desktop`` add or remove the
menu entry; ``--self-test MODEL`` opens MODEL offscreen-friendly and exits (used by CI on the
standalone build).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyqtgraph  # noqa: F401  (imported after PySide6 so it binds to it)
from PySide6.QtCore import QTimer, qVersion
from PySide6.QtWidgets import QApplication

from . import APP_NAME, DESKTOP_FILE_NAME, ORG_NAME
from .desktop import app_icon, handle_desktop_flags
from .dialogs import excepthook


def create_app(argv: Sequence[str]) -> QApplication:
    app = QApplication.instance() or QApplication(list(argv))
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
    app = create_app(argv)
    sys.excepthook = excepthook
    from .window import MainWindow

    window = MainWindow()
    window.show()
    if self_test_path is not None:
        return _self_test(app, window, self_test_path)
    paths = [a for a in argv[1:] if not a.startswith("-")]
    if paths and paths[0].lower().endswith(".npz"):
        QTimer.singleShot(0, window.ctl.use_builtin_text)
        QTimer.singleShot(0, lambda: window.open_model(paths[0]))
    elif paths:
        QTimer.singleShot(0, lambda: window.open_text(paths[0]))
    else:
        QTimer.singleShot(0, window.ctl.use_builtin_text)
    return app.exec()


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
        c = mf.config
        finish(
            f"self-test ok: {Path(opened_path).name}: {c.num_layers} x {c.hidden_size} LSTM over "
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


if __name__ == "__main__":
    sys.exit(main(sys.argv))
