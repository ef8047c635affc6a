"""Every QAction of the window, built once with mnemonic, shortcut, status tip and icon; the
menus and toolbar that show them, what each one triggers, and when each one is enabled.

Menus and the toolbar only add these objects; enablement follows the controller's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from charlstm_core.training.policy import same_text
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QStyle, QWidget

from .controller.files import continue_problem
from .controller.state import State
from .widgets.dialogs import about
from .widgets.plain import tip

SP = QStyle.StandardPixmap


@dataclass(frozen=True)
class Spec:
    key: str
    text: str
    shortcut: QKeySequence.StandardKey | str | None
    tip: str
    icon: QStyle.StandardPixmap | None = None
    checkable: bool = False


SPECS: tuple[Spec, ...] = (
    Spec(
        "open_text",
        "&Open Text…",
        QKeySequence.StandardKey.Open,
        "Open a text file to train on (or drop one onto the window)",
        SP.SP_DialogOpenButton,
    ),
    Spec(
        "builtin_text",
        "Use &Built-in Text",
        "Ctrl+Shift+B",
        "Train on the Python standard library's source code, gathered from this computer",
        SP.SP_ComputerIcon,
    ),
    Spec(
        "open_model",
        "Open &Model…",
        "Ctrl+Shift+O",
        "Open a saved model or checkpoint to generate with or to continue training",
        SP.SP_DirOpenIcon,
    ),
    Spec(
        "open_model_text",
        "Open the Model's &Text",
        None,
        "Open the text the current model was trained on, to continue training it on that text",
        SP.SP_FileDialogStart,
    ),
    Spec(
        "save",
        "&Save Model",
        QKeySequence.StandardKey.Save,
        "Save the model and its training state (a checkpoint you can continue)",
        SP.SP_DialogSaveButton,
    ),
    Spec(
        "save_as",
        "Save Model &As…",
        QKeySequence.StandardKey.SaveAs,
        "Save the model to a new file",
        SP.SP_DriveHDIcon,
    ),
    Spec(
        "export_csv",
        "Export Loss as &CSV…",
        "Ctrl+E",
        "Write the loss curve (step, characters, losses) to a CSV file",
        SP.SP_FileIcon,
    ),
    Spec(
        "export_png",
        "Export Plot as &PNG…",
        "Ctrl+Shift+E",
        "Save a picture of the loss plot",
        SP.SP_FileDialogContentsView,
    ),
    Spec(
        "quit",
        "&Quit",
        QKeySequence.StandardKey.Quit,
        "Close CharLSTM Studio",
        SP.SP_DialogCloseButton,
    ),
    Spec(
        "train",
        "&Train New Model",
        "F5",
        "Start training a new model on the loaded text with these settings",
        SP.SP_MediaPlay,
    ),
    Spec(
        "continue",
        "&Continue Training",
        "Ctrl+F5",
        "Continue training the current checkpoint exactly where it stopped",
        SP.SP_MediaSeekForward,
    ),
    Spec("pause", "&Pause", "F6", "Pause training after the current step", SP.SP_MediaPause),
    Spec("resume", "&Resume", "F7", "Resume paused training", SP.SP_MediaPlay),
    Spec(
        "stop",
        "S&top",
        "Shift+F5",
        "Stop training; the model keeps what it learned",
        SP.SP_MediaStop,
    ),
    Spec(
        "sweep",
        "Try Several &Settings…",
        "F9",
        "Train one run per combination of a few settings' values and find the best",
        SP.SP_FileDialogDetailedView,
    ),
    Spec(
        "cancel_sweep",
        "Cancel S&weep",
        "Shift+F9",
        "Stop the sweep's current run and skip the rest; finished runs are kept",
        SP.SP_DialogCancelButton,
    ),
    Spec(
        "generate",
        "&Generate Text",
        "Ctrl+G",
        "Write text with the current model (a copy taken between two training steps)",
        SP.SP_ArrowRight,
    ),
    Spec(
        "stop_generate", "Stop &Generating", "Ctrl+Shift+G", "Stop writing text", SP.SP_BrowserStop
    ),
    Spec(
        "copy_text",
        "&Copy Generated Text",
        "Ctrl+Shift+C",
        "Copy the generated text to the clipboard",
        None,
    ),
    Spec(
        "save_text",
        "Save Generated Text &As…",
        "Ctrl+Shift+T",
        "Save the generated text to a .txt file",
        None,
    ),
    Spec(
        "log_scale", "&Logarithmic Loss Axis", "Ctrl+L", "Show the loss on a log scale", None, True
    ),
    Spec(
        "x_chars",
        "X Axis in &Characters Seen",
        "Ctrl+K",
        "Plot against training characters instead of steps",
        None,
        True,
    ),
    Spec(
        "x_time",
        "X Axis in &Training Time",
        "Ctrl+Shift+K",
        "Plot against training time, to compare what runs reach in the same minutes",
        None,
        True,
    ),
    Spec(
        "reference_lines",
        "&Reference Lines",
        None,
        "Show what gzip, bz2 and xz and the character entropies reach, as lines on the loss plot",
        None,
        True,
    ),
    Spec(
        "messages",
        "&Messages",
        "Ctrl+Shift+M",
        "Every message the status bar showed, in full (or double-click the status bar)",
        SP.SP_FileDialogInfoView,
    ),
    Spec("reset_layout", "&Reset Layout", None, "Put the panels back where they started", None),
    Spec(
        "help",
        "CharLSTM Studio &Guide",
        QKeySequence.StandardKey.HelpContents,
        "How to train a model, read its curves, generate text and keep your work",
        SP.SP_DialogHelpButton,
    ),
    Spec(
        "about",
        "&About CharLSTM Studio",
        None,
        "Version and licence",
        SP.SP_MessageBoxInformation,
    ),
    Spec("about_qt", "About &Qt", None, "The Qt version this app uses", None),
)


def build_actions(parent: QWidget) -> dict[str, QAction]:
    style = parent.style()
    actions: dict[str, QAction] = {}
    for spec in SPECS:
        action = QAction(spec.text, parent)
        if spec.icon is not None:
            action.setIcon(style.standardIcon(spec.icon))
        if isinstance(spec.shortcut, QKeySequence.StandardKey):
            action.setShortcut(QKeySequence(spec.shortcut))
        elif spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
        action.setStatusTip(spec.tip)
        action.setToolTip(
            f"{spec.tip} ({action.shortcut().toString()})" if spec.shortcut else spec.tip
        )
        action.setCheckable(spec.checkable)
        action.setObjectName(f"action_{spec.key}")
        actions[spec.key] = action
    return actions


def build_menus(w: Any) -> None:
    """The menu bar and the toolbar of window ``w`` (its ``actions`` and docks); the two Open
    Recent menus become ``w.recent_texts_menu`` and ``w.recent_models_menu``."""
    a = w.actions
    bar = w.menuBar()
    file = bar.addMenu("&File")
    file.addActions([a["open_text"], a["builtin_text"]])
    w.recent_texts_menu = file.addMenu("Open &Recent Text")
    file.addSeparator()
    file.addAction(a["open_model"])
    w.recent_models_menu = file.addMenu("Open Recent Mo&del")
    file.addAction(a["open_model_text"])
    file.addActions([a["save"], a["save_as"]])
    file.addSeparator()
    file.addActions([a["export_csv"], a["export_png"]])
    file.addSeparator()
    file.addAction(a["quit"])
    train = bar.addMenu("&Training")
    train.setToolTipsVisible(True)  # a disabled Continue says why
    train.addActions([a["train"], a["continue"], a["pause"], a["resume"], a["stop"]])
    train.addSeparator()
    train.addActions([a["sweep"], a["cancel_sweep"]])
    gen = bar.addMenu("&Generate")
    gen.addActions([a["generate"], a["stop_generate"], a["copy_text"], a["save_text"]])
    view = bar.addMenu("&View")
    view.addActions([a["log_scale"], a["x_chars"], a["x_time"], a["reference_lines"]])
    view.addSeparator()
    view.addActions(
        [
            w.settings_dock.toggleViewAction(),
            w.output_dock.toggleViewAction(),
            a["messages"],
            a["reset_layout"],
        ]
    )
    helpm = bar.addMenu("&Help")
    helpm.addAction(a["help"])
    helpm.addSeparator()
    helpm.addActions([a["about"], a["about_qt"]])
    for menu, kind in ((w.recent_texts_menu, "texts"), (w.recent_models_menu, "models")):
        menu.setObjectName(f"recent_{kind}")
        menu.aboutToShow.connect(lambda m=menu, k=kind: w._fill_recent(m, k))
    tb = w.addToolBar("Main")
    tb.setObjectName("main_toolbar")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tb.addActions([a["open_text"], a["open_model"], a["save"]])
    tb.addSeparator()
    tb.addActions([a["train"], a["continue"], a["pause"], a["resume"], a["stop"]])
    tb.addSeparator()
    tb.addAction(a["generate"])


def connect_actions(w: Any) -> None:
    """Each action of window ``w`` to the intent it stands for (a window or controller
    method), and the panels' own buttons and the form's changes."""
    a, c = w.actions, w.ctl
    a["open_text"].triggered.connect(w.files.open_text)
    a["builtin_text"].triggered.connect(c.use_builtin_text)
    a["open_model"].triggered.connect(w.files.open_model)
    a["open_model_text"].triggered.connect(w.open_model_text)
    a["save"].triggered.connect(w.save)
    a["save_as"].triggered.connect(w.save_as)
    a["export_csv"].triggered.connect(w.files.export_csv)
    a["export_png"].triggered.connect(w.files.export_png)
    a["quit"].triggered.connect(w.close)
    a["train"].triggered.connect(w.train_new)
    a["continue"].triggered.connect(w.continue_training)
    a["pause"].triggered.connect(c.pause)
    a["resume"].triggered.connect(c.resume)
    a["stop"].triggered.connect(c.stop)
    a["generate"].triggered.connect(w.gen.request)
    a["stop_generate"].triggered.connect(c.cancel_generation)
    a["copy_text"].triggered.connect(w.gen.copy_all)
    a["save_text"].triggered.connect(w.files.save_generated)
    a["log_scale"].toggled.connect(w.plot.set_log_scale)
    a["x_chars"].toggled.connect(lambda on: w._x_action_toggled("chars", on))
    a["x_time"].toggled.connect(lambda on: w._x_action_toggled("time", on))
    a["reference_lines"].toggled.connect(w.plot.show_references)
    w.plot.log_scale_changed.connect(a["log_scale"].setChecked)
    w.plot.x_axis_changed.connect(w._on_x_axis)
    a["reset_layout"].triggered.connect(lambda: w.restoreState(w._default_state))
    a["messages"].triggered.connect(lambda: w.message_log.show())
    a["help"].triggered.connect(w.show_help)
    a["about"].triggered.connect(lambda: about(w))
    a["about_qt"].triggered.connect(QApplication.aboutQt)
    w.gen.generate_requested.connect(w.generate)
    w.gen.cancel_requested.connect(c.cancel_generation)
    w.gen.save.clicked.connect(w.files.save_generated)
    w.form.changed.connect(w._estimate_timer.start)
    w.form.changed.connect(w._show_device)


def update_actions(
    a: dict[str, QAction],
    c: Any,
    continue_tips: tuple[str, str],
    model_text_candidates: Callable[[], list[str]],
) -> None:
    """Enable each action as controller ``c``'s state allows; a disabled Continue says why
    (``continue_tips``: its tool and status tips when it is possible)."""
    st = c.state
    idle = st is State.IDLE
    # a sweep owns the text and the training from its timing to its last run: then the state
    # is never idle (sweeping, or its point's run)
    busy = bool(c.busy) and "Saving" not in c.busy
    has_corpus = c.corpus is not None
    has_model = c.model is not None or c.training
    can_continue = idle and c.model is not None and c.model.train is not None
    a["open_text"].setEnabled(idle and not busy)
    a["builtin_text"].setEnabled(idle and not busy)
    a["open_model"].setEnabled(idle and not busy)
    a["save"].setEnabled(has_model and st is not State.STOPPING)
    a["save_as"].setEnabled(has_model and st is not State.STOPPING)
    a["train"].setEnabled(idle and has_corpus and not busy)
    # Continue is off, saying why, when the model cannot represent the loaded text.
    problem = continue_problem(c.model, c.corpus) if can_continue and has_corpus else ""
    a["continue"].setEnabled(can_continue and has_corpus and not busy and not problem)
    a["continue"].setToolTip(tip(problem) or continue_tips[0])  # problem: names the texts
    a["continue"].setStatusTip(problem or continue_tips[1])
    own_fp = c.model.train.corpus if can_continue else None
    a["open_model_text"].setEnabled(
        can_continue
        and not busy
        and not (has_corpus and same_text(own_fp, c.corpus.sha256))
        and bool(model_text_candidates())
    )
    a["pause"].setEnabled(st is State.TRAINING)
    a["resume"].setEnabled(st is State.PAUSED)
    a["stop"].setEnabled(st in (State.TRAINING, State.PAUSED, State.STARTING))
    a["sweep"].setEnabled(idle and has_corpus and not busy)
    a["cancel_sweep"].setEnabled(c.sweeping)
    a["generate"].setEnabled(has_model and not c.generating)
    a["stop_generate"].setEnabled(c.generating)
