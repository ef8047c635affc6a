"""What the window shows when the controller reports: a text loaded, a model opened or saved,
training events, a run's end, an autosave, a text that is not UTF-8.

``ControllerView`` connects those signals of the controller to the window's panels, status bar
and messages. The window keeps the questions and alerts (``offer_model_text``,
``ask_encoding``, ``alert``) so tests can answer them, and renders the state itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from charlstm_core.events import EvalEvent, RollbackEvent, SampleEvent, StepEvent
from charlstm_core.files.text import display_path
from charlstm_core.training.policy import same_text
from PySide6.QtCore import Slot

from ..controller import autosaves
from ..controller.files import continue_problem
from ..widgets import fmt


class ControllerView:
    """The controller's reports, shown in ``window`` (a ``MainWindow``)."""

    def __init__(self, window: Any) -> None:
        self.win = window
        self.ctl = c = window.ctl
        c.corpus_changed.connect(self.on_corpus)
        c.model_opened.connect(self.on_model_opened)
        c.history_reset.connect(self.on_history_reset)
        c.train_events.connect(self.on_events)
        c.run_finished.connect(self.on_run_finished)
        c.blas_info.connect(self.on_blas)
        c.saved.connect(self.on_saved)
        c.autosaved.connect(self.on_autosaved)
        c.decode_failed.connect(self.on_decode_failed)

    @Slot(object)
    def on_corpus(self, corpus: Any) -> None:
        if corpus.path:
            self.win.recent.add("texts", corpus.path)
        self.win.text_panel.show_corpus(corpus, self.win.form.values()["val_fraction"])
        self.win.tabs.setCurrentWidget(self.win.text_panel)
        self.win.statusBar().showMessage(
            f"Loaded {corpus.name}: {corpus.n_chars:,} characters, {corpus.vocab.size} distinct",
            5000,
        )
        model = self.ctl.model
        if model is not None and model.train is not None:
            fp = model.train.corpus or {}
            problem = continue_problem(model, corpus)
            if problem:  # Continue is off now; its tooltip says the same
                self.win.statusBar().showMessage(problem, 15_000)
            elif fp.get("sha256") and not same_text(fp, corpus.sha256):
                self.win.statusBar().showMessage(
                    f"Note: the opened model was trained on {fp.get('name', 'another text')}; "
                    "continuing it trains on this text instead.",
                    10_000,
                )
        self.win.render_state()
        self.win._update_title()
        self.win._estimate_timer.start()

    @Slot(object, object)
    def on_model_opened(self, model: Any, path: str) -> None:
        self.win.recent.add("models", path)
        if model.train is not None:
            self.win.form.set_from_configs(model.config, model.train.config)
            self.win.status_bar.show_checkpoint(model.train)
            fp = model.train.corpus or {}
            corpus = self.ctl.corpus
            if corpus is None or not same_text(fp, corpus.sha256):
                text = (
                    f"This checkpoint was trained on “{fp.get('name', '?')}” "
                    f"({fmt.size(fp.get('size', 0))}). Open that text to continue training it "
                    "exactly; another text works too if it uses only the model's characters. "
                    "You can generate text right away."
                )
                found = self.win.model_text_candidates()
                if found:
                    self.win.offer_model_text(text, found[0])
                else:
                    self.win.show_message("Model opened", text)
        self.win.plot.plot.enableAutoRange()
        self.win.plot.refresh_now()
        self.restore_samples(model)
        self.win.statusBar().showMessage(f"Opened {display_path(path)}", 5000)
        self.win.render_state()

    def restore_samples(self, model: Any) -> None:
        """The Samples history kept in a checkpoint, each headed by the validation loss known
        at its step (as during training)."""
        self.win.samples.clear_samples()
        t = model.train
        if t is None or not getattr(t, "samples", ()):
            return
        val_step = np.asarray(t.history.get("val_step", ()), dtype=np.int64)
        val_loss = np.asarray(t.history.get("val_loss", ()), dtype=np.float64)
        for step, text in t.samples:
            i = int(np.searchsorted(val_step, step, side="right")) - 1
            val = float(val_loss[i]) if i >= 0 else None
            self.win.samples.add_sample(step, val, t.config.sample_temperature, text)

    @Slot()
    def on_history_reset(self) -> None:
        """A new run or another model: nothing of the previous one stays on show."""
        self.win.status_bar.clear_run()
        self.win.plot.plot.enableAutoRange()
        self.win.plot.refresh_now()
        self.win.runs.overlay(
            self.win.runs_panel.model.checked
        )  # the live curve is another run's now

    @Slot(object)
    def on_events(self, batch: tuple) -> None:
        """At most ~30 batches a second arrive; the newest step and the samples are shown at
        most ``widgets.throttle.LIVE_HZ`` times a second."""
        last_step = None
        for ev in batch:
            if isinstance(ev, StepEvent):
                last_step = ev
            elif isinstance(ev, SampleEvent):
                self.win.samples.add_live_sample(ev.step, ev.val_loss, ev.temperature, ev.text)
            elif isinstance(ev, EvalEvent):
                self.win.status_bar.set_best(ev.best_val_loss)
            elif isinstance(ev, RollbackEvent):  # marked on the plot too (LossPlot)
                self.win.status_bar.set_best(self.ctl.best_val)
                self.win.statusBar().showMessage(
                    f"Training blew up at step {ev.from_step:,} and healed itself: "
                    f"{ev.describe()}.",
                    15000,
                )
        if last_step is not None:
            self.win.status_bar.show_step(last_step, self.ctl.eta_seconds(last_step))

    @Slot(object)
    def on_run_finished(self, summary: Any) -> None:
        """Say that a run ended, and ask for attention when the window is in the background."""
        best = ""
        if summary.best_val_loss is not None:
            best = f", best validation loss {fmt.loss(summary.best_val_loss)}"
        verb = "finished" if summary.reason == "completed" else "stopped"
        self.win.status_bar.show_end(summary)
        self.win.statusBar().showMessage(
            f"Training {verb} at step {summary.steps:,} after {fmt.duration(summary.duration_s)}"
            f"{best}."
        )
        if not self.win.isActiveWindow():
            self.win.alert()

    @Slot(str)
    def on_blas(self, text: str) -> None:
        self.win.status_bar.set_speed_note(text)
        self.win.statusBar().showMessage(text, 8000)

    @Slot(object)
    def on_saved(self, path: str) -> None:
        self.win.recent.add("models", path)
        where = display_path(path)
        if os.path.islink(path):  # saved through the link, which stays a link
            where = f"{display_path(os.path.realpath(path))} (through the link {where})"
        self.win.statusBar().showMessage(f"Saved the model to {where}", 5000)
        self.win.render_state()
        self.win._update_title()

    @Slot(object)
    def on_autosaved(self, path: str) -> None:
        self.win.statusBar().showMessage(f"Checkpoint autosaved to {display_path(path)}", 5000)
        keep = int(self.win.form.values()["autosave_keep"])
        autosaves.prune(Path(path).parent, keep, protect=(path, self.ctl.model_path))
        self.win.form.show_autosave_size()

    @Slot(object, str)
    def on_decode_failed(self, path: str, message: str) -> None:
        if not path:
            self.win.show_message("Not UTF-8 text", message)
            return
        encoding = self.win.ask_encoding(path, message)
        if encoding:
            self.win.open_text(path, encoding)
