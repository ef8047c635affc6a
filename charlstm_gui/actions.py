"""Every QAction of the window, built once with mnemonic, shortcut, status tip and icon.

Menus and the toolbar only add these objects; enablement follows the controller's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QStyle, QWidget

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
