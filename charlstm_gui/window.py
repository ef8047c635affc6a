"""The main window: renders the controller's state and forwards the user's intents to it.

Layout: the loss plot in the middle, settings docked on the left, and Text / Samples / Generate
tabs docked below. Every action lives in ``self.actions``; its enablement follows the state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charlstm_core.config import GenerationConfig
from charlstm_core.engine.devices import list_devices
from charlstm_core.errors import ConfigError
from charlstm_core.files.text import display_path
from PySide6.QtCore import QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QTabWidget,
)

from . import leaving
from .actions import build_actions, build_menus, connect_actions, update_actions
from .controller.controller import Controller, State
from .controller.files import model_text_candidates
from .controller.settings_check import LOAD_POLL_MS, SettingsCheck, form_problem
from .desktop import app_icon
from .views.generate import GeneratePanel
from .views.inspect import InspectView
from .views.message_log import MessageLog
from .views.meters import TextMeters
from .views.plot import LossPlot
from .views.plot_note import PlotNote
from .views.reports import ControllerView
from .views.runs import RunsView
from .views.runs_table import RunsPanel
from .views.samples import SamplesPane
from .views.settings_form import SettingsForm
from .views.status_bar import StatusBar
from .views.sweep_dialog import SweepDialog, SweepSpec, jobs_sweep_state
from .views.text import TextPanel
from .widgets import fmt, tooltips
from .widgets.dialogs import (
    ask_encoding,
    show_error_report,
)
from .widgets.file_dialogs import FileDialogs
from .widgets.plain import message_box
from .widgets.recent_files import RecentFiles, storable

DEFAULT_SIZE = (1280, 820)


def initial_size(screen: Any) -> tuple[int, int]:
    """The window's first size: ``DEFAULT_SIZE``, cut to the screen's free area, so that on a
    small screen the status bar and the Runs tab's buttons are not off the edge."""
    w, h = DEFAULT_SIZE
    if screen is None:
        return w, h
    free = screen.availableGeometry()
    return min(w, free.width()), min(h, free.height())


class MainWindow(QMainWindow):
    def __init__(self, controller: Controller | None = None) -> None:
        super().__init__()
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.ctl = controller or Controller(self)
        self.settings = QSettings()
        self.recent = RecentFiles(self.settings)
        self.files = FileDialogs(self, self.settings)
        tooltips.install(QApplication.instance())  # every long tooltip is shown wrapped
        self.last_message: tuple[str, str] | None = None
        self._closing = False
        self._gen_prime = ""
        self.check = SettingsCheck(self.ctl, on_timing=lambda: self._update_estimate())
        self._help: Any = None  # the guide's window, made on first use

        self.plot = LossPlot(self.ctl.history)
        self.setCentralWidget(self.plot)
        self.form = SettingsForm()
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(self.form.sizeHint().width() + 24)
        self.settings_dock = QDockWidget("Settings", self)
        self.settings_dock.setObjectName("settings_dock")
        self.settings_dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.settings_dock)
        self.text_panel = TextPanel()
        self.samples = SamplesPane()
        self.gen = GeneratePanel()
        self.inspect = InspectView(self.ctl, self._val_fraction, self.gen.text)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.text_panel, "&Text")
        self.tabs.addTab(self.samples.with_meter(), "&Samples")
        self.tabs.addTab(self.gen, "&Generate")
        self.tabs.addTab(self.inspect, "&Inspect")
        self.meters = TextMeters(self.ctl, self.plot, self.samples, self.gen, self._val_fraction)
        self.runs_panel = RunsPanel()
        self.tabs.addTab(self.runs_panel, "&Runs")
        self.output_dock = QDockWidget("Text, samples and generation", self)
        self.output_dock.setObjectName("output_dock")
        self.output_dock.setWidget(self.tabs)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.output_dock)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.TopLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.resize(*initial_size(QApplication.primaryScreen()))
        self.resizeDocks([self.output_dock], [280], Qt.Orientation.Vertical)
        self._default_state = self.saveState()

        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(300)
        self._estimate_timer.timeout.connect(self._update_estimate)
        self._load_timer = QTimer(self)  # the estimate is measured again when the load changes
        self._load_timer.setInterval(LOAD_POLL_MS)
        self._load_timer.timeout.connect(self._poll_load)
        self._load_timer.start()
        self.actions = build_actions(self)
        cont = self.actions["continue"]
        self._continue_tips = (cont.toolTip(), cont.statusTip())  # when Continue is possible
        build_menus(self)
        self.status_bar = StatusBar(self.statusBar())
        self.message_log = MessageLog(self.statusBar(), self)  # long messages read in full
        self.plot_note = PlotNote(self.ctl, self.plot)  # what the plot shows after a switch
        self.status = self.status_bar.labels  # by key, see status_bar.TIPS
        self.progress = self.status_bar.progress
        self._connect()
        self.runs = RunsView(self)
        self.view = ControllerView(self)
        self.restore_settings()
        self.render_state()
        self._update_title()
        # CuPy is imported off the GUI thread, only to list the devices
        # (charlstm_core.engine.devices)
        self.ctl.run_task(list_devices, self.form.set_devices)
        self._show_device()

    # ---------------------------------------------------------------- construction
    def _connect(self) -> None:
        c = self.ctl
        connect_actions(self)
        c.state_changed.connect(self._on_state)
        c.busy_changed.connect(self._on_busy)
        c.model_changed.connect(self._on_model)
        c.dirty_changed.connect(self._on_dirty)
        c.message.connect(self.show_message)
        c.internal_error.connect(self._on_internal_error)
        c.generation_started.connect(self._on_gen_started)
        c.generation_text.connect(self.gen.append)
        c.generation_finished.connect(self._on_gen_finished)

    def _x_action_toggled(self, axis: str, on: bool) -> None:
        if on:
            self.plot.set_x_axis(axis)
        elif self.plot.x_axis == axis:  # unticked: back to steps
            self.plot.set_x_axis("step")

    @Slot(str)
    def _on_x_axis(self, axis: str) -> None:
        self.actions["x_chars"].setChecked(axis == "chars")
        self.actions["x_time"].setChecked(axis == "time")

    # ---------------------------------------------------------------- messages and questions
    @Slot(str, str)
    def show_message(self, title: str, text: str) -> None:
        """A problem the user can fix: a window-modal box that does not block the event loop."""
        text = display_path(text)  # a file name's bytes that are not UTF-8 shown as \xff
        self.last_message = (title, text)
        box = message_box(QMessageBox.Icon.Warning, title, text, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.statusBar().showMessage(text, 10_000)

    def ask_unsaved(self, context: str) -> str:
        """'save', 'discard' or 'cancel' (tests replace this method, or click ``unsaved_box``)."""
        box = self.unsaved_box(context)
        box.exec()
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(box.standardButton(box.clickedButton()), "cancel")

    def unsaved_box(self, context: str) -> QMessageBox:
        """The question before ``context`` loses unsaved training; its Save button says which file
        it writes (the model's own, else that it asks where)."""
        path = self.ctl.model_path
        if path:
            where = f"Save it to {display_path(path)} before {context}?"
            save_text = f"&Save to {display_path(Path(path).name)}"
        else:
            where = f"Save it before {context}? It has no file yet: Save asks where to write it."
            save_text = "&Save As…"
        extra = ""
        if self.ctl.autosave_file:
            extra = f"\n\nThe last automatic checkpoint is {self.ctl.autosave_file}."
        box = message_box(
            QMessageBox.Icon.Question,
            "Unsaved training",
            f"The model has training that is not saved. {where}{extra}",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            self,
        )
        save = box.button(QMessageBox.StandardButton.Save)
        save.setText(save_text)
        save.setToolTip(path or "Choose a file for the model, then save it there.")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        return box

    def ask_save_path(self) -> str | None:
        """Where to save the model, or None (tests replace this method)."""
        return self.files.save_model_path()

    def ask_encoding(self, path: str, message: str) -> str | None:
        return ask_encoding(self, path, message)

    # ---------------------------------------------------------------- user intents
    def open_text(self, path: str, encoding: str | None = None) -> None:
        if storable(path):
            self.settings.setValue("paths/last_text_dir", str(Path(path).parent))
        self.ctl.open_text(path, encoding)

    def open_model(self, path: str) -> None:
        if self.ctl.dirty and not self.resolve_unsaved("opening another model"):
            return
        if storable(path):
            self.settings.setValue("paths/last_model_dir", str(Path(path).parent))
        self.ctl.open_model(path)

    def model_text_candidates(self) -> list[str]:
        """Files that may be the current model's own text (see controller)."""
        return model_text_candidates(
            self.ctl.model, self.ctl.model_path, self.recent.paths("texts")
        )

    def open_model_text(self) -> None:
        found = self.model_text_candidates()
        if not found:
            train = self.ctl.model.train if self.ctl.model is not None else None
            name = (train.corpus or {}).get("name") if train is not None else None
            self.show_message(
                "Text not found",
                f"The text the model was trained on ({name or 'unknown'}) was not found beside "
                "the model or among the recent texts. Open it with File ▸ Open Text.",
            )
            return
        self.open_text(found[0])

    def offer_model_text(self, text: str, path: str) -> None:
        """Say ``text`` and offer to open ``path``, the model's own text (tests replace this)."""
        self.last_message = ("Model opened", text)
        box = message_box(QMessageBox.Icon.Information, "Model opened", text, parent=self)
        open_it = box.addButton(f"Open {Path(path).name}", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Not Now", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(open_it)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: Any) -> None:
            if button is open_it and not self.ctl.training:
                self.open_text(path)

        box.buttonClicked.connect(answered)
        box.open()

    def save(self) -> None:
        if self.ctl.model_path:
            self.ctl.save_model(self.ctl.model_path)
        else:
            self.save_as()

    def save_as(self) -> None:
        path = self.ask_save_path()
        if path:
            self.ctl.save_model(path)

    def resolve_unsaved(self, context: str) -> bool:
        """Ask about unsaved training before ``context``; True when the caller may go on."""
        return leaving.resolve_unsaved(self, context)

    def checked_configs(self) -> tuple[Any, Any] | None:
        corpus = self.ctl.corpus
        if corpus is None:
            self.show_message("No text", "Open a text file (or use the built-in text) first.")
            return None
        configs, problem = form_problem(self.form, self.ctl)
        self.form.show_problem(problem)
        if problem:
            self.show_message("Check the settings", problem)
        return configs

    def train_new(self) -> None:
        if self.ctl.training:
            return
        if self.ctl.dirty and not self.resolve_unsaved("starting a new model"):
            return
        configs = self.checked_configs()
        if configs is None:
            return
        self.samples.clear_samples()
        device = self.form.device_choice()
        self.ctl.start_training(
            *configs, autosave_dir=self.form.values()["autosave_dir"], device=device
        )

    def continue_training(self) -> None:
        if self.ctl.training:
            return
        configs = self.checked_configs()
        if configs is None:
            return
        self.ctl.start_training(
            *configs,
            resume=True,
            autosave_dir=self.form.values()["autosave_dir"],
            device=self.form.device_choice(),
        )

    @Slot(object)
    def generate(self, request: GenerationConfig) -> None:
        self.tabs.setCurrentWidget(self.gen)
        self._gen_prime = request.prime
        self.ctl.generate(request)
        self.render_state()

    # ---------------------------------------------------------------- drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        urls = event.mimeData().urls()
        if len(urls) == 1 and urls[0].isLocalFile() and not self.ctl.training:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = event.mimeData().urls()[0].toLocalFile()
        event.acceptProposedAction()
        if path.lower().endswith(".npz"):
            self.open_model(path)
        else:
            self.open_text(path)

    def _fill_recent(self, menu: QMenu, kind: str) -> None:
        self.recent.fill_menu(
            menu,
            kind,
            enabled=not self.ctl.training,
            open_path=self.open_model if kind == "models" else self.open_text,
            missing=lambda p: self.show_message("File not found", f"{p} no longer exists."),
        )

    # ---------------------------------------------------------------- controller -> view
    @Slot(object)
    def _on_state(self, state: State) -> None:
        live = self.ctl.training  # a run of the app's trainer: a few redraws a second
        self.plot.set_live(live)
        self.render_state()
        if not live:  # the run ended (idle, or a sweep between points): its last step and samples
            self.status_bar.flush()  # before its ETA is cleared
            self.samples.flush()
        if state is State.IDLE and self.ctl.last_step is not None:
            self.status_bar.clear_eta()

    def render_state(self) -> None:
        c = self.ctl
        st = c.state
        idle = st is State.IDLE
        has_corpus = c.corpus is not None
        update_actions(self.actions, c, self._continue_tips, self.model_text_candidates)
        has_model = c.model is not None or c.training
        if c.training:
            source = "the model being trained"
        elif c.model is not None:
            source = c.model_source or "the current model"
        else:
            source = ""
        self.gen.set_can_generate(has_model and not c.generating, source)
        self.form.setEnabled(idle and not c.sweeping)  # a sweep keeps the settings it began with
        text = {
            State.IDLE: "Ready" if has_corpus else "Open a text to begin",
            State.SWEEPING: "between runs",
            State.STARTING: "Starting…",
            State.TRAINING: "Training",
            State.PAUSED: "Paused",
            State.STOPPING: "Stopping…",
        }[st]
        sweep = c.sweep if c.sweeping else None
        if sweep is not None and (sweep.cluster or sweep.jobs > 1):
            text = jobs_sweep_state(sweep)
        elif sweep is not None and sweep.timing:
            text = f"Sweep: timing {len(sweep.points)} settings…"
        elif sweep is not None and 0 <= sweep.current < len(sweep.points):
            point = sweep.points[sweep.current]
            text = f"Sweep {sweep.current + 1}/{len(sweep.points)} ({point.label}): {text}"
        self.status_bar.set_state(c.busy or text, busy=bool(c.busy) and idle)

    @Slot(str)
    def _on_busy(self, what: str) -> None:
        self.render_state()

    @Slot(object, str)
    def _on_model(self, model: Any, source: str) -> None:
        self.render_state()
        self._update_title()

    def alert(self) -> None:
        """Flash the taskbar entry until the window is activated (tests replace this)."""
        QApplication.alert(self)

    def show_help(self) -> None:
        if self._help is None:
            from .help import HelpWindow

            self._help = HelpWindow(self)
        self._help.show_guide()

    @Slot(bool)
    def _on_dirty(self, dirty: bool) -> None:
        self._update_title()

    @Slot(str)
    def _on_internal_error(self, tb: str) -> None:
        show_error_report(tb, self)

    @Slot(str)
    def _on_gen_started(self, source: str) -> None:
        self.gen.started(source, self._gen_prime)
        self.render_state()

    @Slot(bool)
    def _on_gen_finished(self, completed: bool) -> None:
        self.gen.finished(completed)
        self.render_state()

    def _show_device(self) -> None:
        self.status_bar.set_device(self.form.device.currentText())

    # ---------------------------------------------------------------- runs and sweeps
    def refresh_runs(self) -> None:
        self.runs.refresh_runs()

    def compare_runs(self, ids: list) -> None:
        self.runs.compare_runs(ids)

    def ask_sweep(self) -> SweepSpec | None:
        """The sweep the user describes, or None (tests replace this method)."""
        address = self.settings.value("sweep/cluster_address", "", type=str)
        dialog = SweepDialog(
            self.form.values(), self, check_cluster=self.ctl.check_cluster, cluster_address=address
        )
        if dialog.exec() != SweepDialog.DialogCode.Accepted:
            return None
        spec = dialog.spec()
        if spec.cluster:
            self.settings.setValue("sweep/cluster_address", spec.cluster)
        return spec

    def ask_open_best(self, best: Any, lines: list[str]) -> bool:
        """Offer to open the best run's model (tests replace this method)."""
        box = message_box(
            QMessageBox.Icon.Question,
            "Sweep finished",
            f"The best validation loss is {fmt.loss(best.best_val)}, with {best.label}.\n\n"
            + "\n".join(lines)
            + "\n\nOpen the best run's model?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        return box.exec() == QMessageBox.StandardButton.Yes

    # ---------------------------------------------------------------- estimate
    def _update_estimate(self) -> None:
        """Show what the form's settings mean on the loaded text (see settings_check.py)."""
        corpus = self.ctl.corpus
        if corpus is None:
            return
        v = self.form.values()
        self.text_panel.set_split(corpus.n_chars, v["val_fraction"], v["val_split"])
        try:
            config = self.form.configs(corpus.vocab.size)[1]
            self.form.show_problem("")
        except ConfigError as exc:
            config = None
            self.form.show_problem(str(exc))
        check = self.check.check(v, self.form.device_choice(), config)
        if check is not None:
            self.text_panel.show_validation_check(check.unseen)
            self.text_panel.show_estimate(
                check.estimate,
                check.train_chars,
                check.steps,
                check.passes,
                float(v["dropout"]),
                steps_estimated=check.steps_estimated,
            )

    def _poll_load(self) -> None:
        if self.check.poll_load():
            self._update_estimate()  # measured again, under the load there is now

    def _val_fraction(self) -> float:
        return float(self.form.values()["val_fraction"])

    # ---------------------------------------------------------------- title, settings, close
    def _update_title(self) -> None:
        # Qt itself ends every title with " — " and the application's display name (APP_NAME)
        parts = []
        if self.ctl.corpus is not None:
            parts.append(self.ctl.corpus.name)
        if self.ctl.model_path:
            parts.append(display_path(Path(self.ctl.model_path).name) + "[*]")
        elif self.ctl.model is not None or self.ctl.training:
            parts.append("unsaved model[*]")
        self.setWindowTitle(" — ".join(parts))
        self.setWindowModified(self.ctl.dirty)

    def restore_settings(self) -> None:
        leaving.restore_settings(self)

    def save_settings(self) -> None:
        leaving.save_settings(self)

    def save_and_quit(self, signum: int) -> None:
        """Quit on a signal, keeping unsaved training in an autosave file (see leaving.py)."""
        leaving.save_and_quit(self, signum)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if leaving.may_close(self):
            event.accept()
        else:
            event.ignore()
