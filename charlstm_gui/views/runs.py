"""The Runs tab's wiring: the table, the recorded curves drawn over the plot, and sweeps.

``RunsView`` connects the Runs panel and the sweep actions to the controller: it reloads the
table when runs change (and when the tab is shown, for runs the command line recorded), reads
the ticked runs' curves off the GUI thread and hands them to the plot, starts a sweep from the
form's settings and says how it ended. The window keeps the questions (``ask_sweep``,
``ask_open_best``) so tests can answer them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Slot
from shiboken6 import isValid

from ..widgets import fmt
from .plot import OverlayCurve
from .runs_table import CompareDialog


class RunsView:
    """The runs panel, plot overlays and sweeps of ``window`` (a ``MainWindow``)."""

    def __init__(self, window: Any) -> None:
        self.win = window
        self.ctl = window.ctl
        self.panel = window.runs_panel
        self.plot = window.plot
        self._curves: dict[Any, Any] = {}  # run id -> charlstm_core.runs.Curves of finished runs
        self._connect()

    def _curves_loaded(self, curves: dict) -> None:
        self._curves.update(curves)
        self.overlay(self.panel.model.checked)

    def _connect(self) -> None:
        p, c = self.panel, self.ctl
        self.win.actions["sweep"].triggered.connect(self.start_sweep)
        self.win.actions["cancel_sweep"].triggered.connect(c.cancel_sweep)
        p.sweep_requested.connect(self.start_sweep)
        p.open_requested.connect(self._open_run)
        p.rename_requested.connect(c.rename_run)
        p.delete_requested.connect(
            lambda run, with_model: c.delete_run(run.id, with_model=with_model)
        )
        p.overlay_changed.connect(self.overlay)
        p.compare_requested.connect(self.compare_runs)
        c.runs_changed.connect(self.refresh_runs)
        c.runs_problem.connect(self._on_runs_problem)
        c.sweep_changed.connect(self._on_sweep_changed)
        c.sweep_finished.connect(self._on_sweep_finished)
        self.win.tabs.currentChanged.connect(self._tab_changed)
        QTimer.singleShot(0, self.panel, self.refresh_runs)  # dropped if the window is gone

    def _tab_changed(self, index: int) -> None:
        if self.win.tabs.widget(index) is self.panel:
            self.refresh_runs()  # runs recorded by the command line meanwhile

    def refresh_runs(self) -> None:
        """Reload the table (1,000 runs: one query; ``benchmarks/bench_runs_gui.py``)."""
        runs = self.ctl.runs.list_runs()
        ended = {r.id for r in runs if r.status != "running"}
        self._curves = {i: cv for i, cv in self._curves.items() if i in ended}  # growing: reload
        self.panel.set_runs(runs)
        if not self.ctl.runs.problem_text:
            self.panel.show_note("")
        self.overlay(self.panel.model.checked)

    @Slot(str)
    def _on_runs_problem(self, text: str) -> None:
        self.panel.show_note(text)
        self.win.statusBar().showMessage(text, 15_000)

    def _open_run(self, run: Any) -> None:
        if not run.model_path:
            self.win.show_message(
                "No model file",
                f"The run “{run.name}” kept no model file (it was trained without an autosave "
                "folder or an output file).",
            )
            return
        self.win.open_model(run.model_path)

    def overlay(self, ids: list) -> None:
        """Draw the ticked runs' stored curves; the run training now (or just trained) is drawn
        live instead, under its name."""
        live = self.ctl.runs.history_run_id
        missing = [i for i in ids if i not in self._curves and i != live]
        if missing:
            self.ctl.runs.load_curves(missing, self._curves_loaded)
        curves = []
        for i in ids:
            run, cv = self.panel.run(i), self._curves.get(i)
            if i == live or run is None or cv is None:
                continue
            cols = [
                {"step": s.step, "chars": s.chars, "time": s.time, "loss": s.loss}
                for s in (cv.train, cv.val)
            ]
            curves.append(OverlayCurve(i, run.name, *cols))
        self.plot.set_overlays(curves)
        run = self.panel.run(live) if live is not None else None
        self.plot.set_live_name(run.name if run is not None and curves else "")

    def compare_runs(self, ids: list) -> None:
        runs = [r for r in (self.panel.run(i) for i in ids) if r is not None]
        if len(runs) < 2:
            self.win.show_message("Compare settings", "Tick two runs or more to compare them.")
            return
        settings = [
            {"text": r.text_name, **{k.split(".", 1)[-1]: v for k, v in r.flat_settings().items()}}
            for r in runs
        ]
        old = getattr(self.win, "compare_dialog", None)
        if old is not None and isValid(old):
            old.close()  # one comparison at a time: the newest ticks
        dialog = CompareDialog([r.name for r in runs], settings, self.win)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        # not modal: it only shows facts, so it never blocks the window, even where no window
        # manager raises it (issue 20: on a bare X server the click seemed to do nothing)
        dialog.setWindowModality(Qt.WindowModality.NonModal)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        self.win.compare_dialog = dialog

    def start_sweep(self) -> None:
        """Ask for a sweep (``ask_sweep``) and start it on the settings in the form."""
        if self.ctl.training or self.win.checked_configs() is None:
            return
        spec = self.win.ask_sweep()
        configs = self.win.checked_configs() if spec is not None else None
        if configs is None:
            return
        if self.ctl.dirty and not self.win.resolve_unsaved("starting a sweep"):
            return
        self.win.samples.clear_samples()
        self.panel.model.set_checked([])
        self.panel.model.set_best(None)
        self.win.tabs.setCurrentWidget(self.panel)
        self.ctl.start_sweep(
            *configs,
            spec.grid,
            unit=spec.unit,
            budget=spec.budget,
            autosave_dir=self.win.form.values()["autosave_dir"],
            same_steps=spec.same_steps,
            cluster=spec.cluster,
            jobs=spec.jobs,
        )
        self.win.render_state()

    @Slot(object)
    def _on_sweep_changed(self, sweep: Any) -> None:
        ended = [p.run_id for p in sweep.points if p.run_id is not None and p.status != "running"]
        model = self.panel.model
        model.set_checked([*model.checked, *ended])  # each finished point joins the overlay
        self.win.render_state()  # the status bar's state says where the sweep is

    @Slot(object)
    def _on_sweep_finished(self, sweep: Any) -> None:
        self._on_sweep_changed(sweep)
        self.refresh_runs()
        best = sweep.points[sweep.best] if sweep.best is not None else None
        self.panel.model.set_best(best.run_id if best is not None else None)
        ranked = sorted(
            (p for p in sweep.points if p.best_val is not None),
            key=lambda p: (p.status != "finished", p.best_val),
        )
        lines = [f"{p.label}: {fmt.loss(p.best_val)} ({p.status})" for p in ranked]
        lines += [
            f"{p.label}: {p.status}" + (f" — {p.message}" if p.message else "")
            for p in sweep.points
            if p.best_val is None
        ]
        head = "Sweep cancelled." if sweep.cancelled else "Sweep finished."
        self.win.statusBar().showMessage(
            head + (f" Best: {best.label}, {fmt.loss(best.best_val)}" if best else ""), 15_000
        )
        if best is not None and best.model_path and self.win.ask_open_best(best, lines):
            self.win.open_model(best.model_path)
        elif best is None:
            self.win.show_message(
                head, "No run finished with a validation loss.\n\n" + "\n".join(lines)
            )
