"""Start the application: QApplication, error hook, main window, and the built-in text.

``main(argv)`` is the entry point of ``python -m charlstm_gui`` and the ``charlstm-gui`` launcher.
A path given on the command line is opened (a ``.npz`` as a model, anything else as text).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pyqtgraph  # noqa: F401  (imported after PySide6 so it binds to it)
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from . import APP_NAME, DESKTOP_FILE_NAME, ORG_NAME
from .dialogs import excepthook
from .resources import app_icon


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
    app = create_app(argv)
    sys.excepthook = excepthook
    from .window import MainWindow

    window = MainWindow()
    window.show()
    paths = [a for a in argv[1:] if not a.startswith("-")]
    if paths and paths[0].lower().endswith(".npz"):
        QTimer.singleShot(0, window.ctl.use_builtin_text)
        QTimer.singleShot(0, lambda: window.open_model(paths[0]))
    elif paths:
        QTimer.singleShot(0, lambda: window.open_text(paths[0]))
    else:
        QTimer.singleShot(0, window.ctl.use_builtin_text)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
