"""Leaving a model or the app without losing work: the unsaved-training question answered,
the window's settings kept, and the app closed by the user or quit by a signal.

Functions of the main window ``w`` (its controller ``w.ctl``, form, plot and questions); the
window keeps the questions themselves (``ask_unsaved``, ``ask_save_path``) so tests answer them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from charlstm_core.cli.console import exit_status, signal_name
from charlstm_core.errors import CharLSTMError
from charlstm_core.files.text import display_path
from PySide6.QtCore import QByteArray, QStandardPaths
from PySide6.QtWidgets import QApplication


def default_autosave_dir() -> str:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return str(Path(base or Path.home() / ".charlstm") / "autosave")


def has_unsaved_training(w: Any) -> bool:
    return w.ctl.dirty or (w.ctl.training and w.ctl.last_step is not None)


def unsaved_choice(w: Any, context: str) -> tuple[bool, str | None]:
    """Ask about unsaved training before ``context``: (whether the caller may go on, where to
    save first: the model's file, else the path the user picks; None: do not save). Cancelling
    the question or the choice of a path stops the caller."""
    answer = w.ask_unsaved(context)
    if answer == "cancel":
        return False, None
    if answer == "save":
        path = w.ctl.model_path or w.ask_save_path()
        return bool(path), path or None
    return True, None


def resolve_unsaved(w: Any, context: str) -> bool:
    """Ask about unsaved training before ``context`` and save if asked; True when the caller
    may go on."""
    go_on, path = unsaved_choice(w, context)
    return go_on and (path is None or save_before(w, path))


def save_before(w: Any, path: str) -> bool:
    """Save the current model now, before another replaces it; False (and a message) when
    the save failed, so that the caller stops instead of losing the model."""
    if w.ctl.training:
        w.ctl.save_model(path)  # a snapshot between two steps, in the background
        return True
    if w.ctl.model is None:
        return True
    try:
        w.ctl.save_now(path)
    except (CharLSTMError, OSError) as exc:
        w.show_message("The model was not saved", str(exc))
        return False
    return True


def restore_settings(w: Any) -> None:
    """The window's layout, plot options, tab and form, as the last session left them."""
    s = w.settings
    geometry = s.value("window/geometry", QByteArray(), type=QByteArray)
    if not geometry.isEmpty():
        w.restoreGeometry(geometry)
    state = s.value("window/state", QByteArray(), type=QByteArray)
    if not state.isEmpty():
        w.restoreState(state)
    w.form.restore_settings(s, default_autosave_dir())
    w.plot.smoothing.setValue(s.value("plot/smoothing", 900, type=int))
    w.plot.set_log_scale(s.value("plot/log_scale", False, type=bool))
    w.plot.set_x_axis(s.value("plot/x_axis", "step", type=str))
    w.tabs.setCurrentIndex(s.value("window/tab", 0, type=int))
    references = s.value("plot/references", True, type=bool)
    w.actions["reference_lines"].setChecked(references)
    w.plot.show_references(references)
    w.inspect.restore_settings(s)


def save_settings(w: Any) -> None:
    s = w.settings
    s.setValue("window/geometry", w.saveGeometry())
    s.setValue("window/state", w.saveState())
    s.setValue("window/tab", w.tabs.currentIndex())
    s.setValue("plot/smoothing", w.plot.smoothing.value())
    s.setValue("plot/log_scale", w.plot.log_box.isChecked())
    s.setValue("plot/x_axis", w.plot.x_axis)
    s.setValue("plot/references", w.actions["reference_lines"].isChecked())
    w.inspect.save_settings(s)
    w.form.save_settings(s)
    s.sync()


def _stop_everything(w: Any) -> None:
    save_settings(w)
    w.plot.timer.stop()
    w._estimate_timer.stop()
    w.ctl.shutdown(keep_locks=True)


def save_and_quit(w: Any, signum: int) -> None:
    """The system asks the app to quit (SIGTERM at logout, SIGHUP, SIGINT): no question can
    be answered, so unsaved training is saved to an autosave file (said on stderr), then the
    app quits with status 128 + ``signum``, as a program ended by that signal."""
    if w._closing:
        return
    w._closing = True
    unsaved = has_unsaved_training(w)
    _stop_everything(w)
    if unsaved and w.ctl.model is not None:
        folder = w.form.values()["autosave_dir"] or default_autosave_dir()
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            path = w.ctl.save_now(w.ctl.unsaved_autosave_path(folder), user_file=False)
            said = f"saved the unsaved model to {display_path(path)}"
        except (CharLSTMError, OSError) as exc:
            said = f"the unsaved model was NOT saved: {exc}"
    else:
        said = "nothing unsaved; quitting"
    print(f"charlstm-gui: {signal_name(signum)}: {said}", file=sys.stderr, flush=True)
    w.ctl.release_locks()
    w.close()
    QApplication.exit(exit_status(signum))


def may_close(w: Any) -> bool:
    """The user closes the window: ask about unsaved training, stop the workers, save if
    asked; False when the window stays open (cancelled, or the save failed)."""
    if w._closing:
        return True
    save_to = None
    if has_unsaved_training(w):
        go_on, save_to = unsaved_choice(w, "closing")
        if not go_on:
            return False
    w._closing = True
    w.statusBar().showMessage("Stopping…")
    _stop_everything(w)
    if save_to and w.ctl.model is not None:
        try:
            w.ctl.save_now(save_to)
        except (CharLSTMError, OSError) as exc:
            w._closing = False
            w.show_message("The model was not saved", str(exc))
            return False
        finally:
            w.ctl.release_locks()
    w.ctl.release_locks()
    return True
