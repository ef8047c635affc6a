"""The main window's status bar: what the app is doing, the device, and the run's figures.

Permanent labels (state, device, step, epoch, speed, elapsed, ETA, best validation loss) and a
progress bar toward the end of the run; while a text or model loads the bar turns into a busy
bar and afterwards shows the step's progress again. It only shows what it is given: the
run's figures come from the trainer's events and its summary, as charlstm_core.training.measures
defines and formats them (the run's duration, chars/s, time left, a time budget's total as
"about N"), so the status bar, the Runs tab and the command line read the same.

A step's figures arrive with every batch of events (up to 30 a second); they are shown at the
live views' rate (``widgets.throttle.LIVE_HZ``, the newest step, the last one always), since each
new text re-lays out and repaints the bar, and the GUI thread's time is the training's
(``benchmarks/bench_app_vs_cli.py``).
"""

from __future__ import annotations

import math
from typing import Any

from charlstm_core.training import measures
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from ..widgets import fmt
from ..widgets.throttle import LIVE_HZ, Throttle

TIPS = {
    "state": "What the app is doing",
    "device": "Where training runs (the Device setting)",
    "step": "Optimizer steps done / planned",
    "epoch": "Passes over the training text",
    "speed": f"The run's chars/s: {measures.CHARS_PER_SEC_MEANS}",
    "elapsed": f"The run's duration: {measures.DURATION_MEANS}",
    "eta": "The run's time left, its final validation and save included",
    "best": "Best validation loss so far (lower is better)",
}
RUN_FIELDS = ("step", "epoch", "speed", "elapsed", "eta", "best")  # cleared for a new run
PROGRESS_MAX = 1000


class StatusBar:
    """The labels (``labels[key]``, keys of ``TIPS``) and the progress bar of ``bar``."""

    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.labels: dict[str, QLabel] = {}
        for key, tip in TIPS.items():
            lab = QLabel("—")
            lab.setToolTip(tip)
            lab.setObjectName(f"status_{key}")
            lab.setTextFormat(Qt.TextFormat.PlainText)  # "Saving <file name>…"
            self.labels[key] = lab
            bar.addPermanentWidget(lab)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setRange(0, PROGRESS_MAX)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setToolTip("Progress toward the end of the run")
        bar.addPermanentWidget(self.progress)
        self._progress_kept = 0  # the bar's value while it shows a busy load or save
        self.step_shown = Throttle(self._show_step, LIVE_HZ, bar)

    def say(self, text: str, timeout_ms: int = 0) -> None:
        """A passing message on the left (0: until the next one)."""
        self.bar.showMessage(text, timeout_ms)

    def set_state(self, text: str, busy: bool) -> None:
        """What the app is doing; ``busy``: a busy bar instead of the run's progress."""
        self.labels["state"].setText(text)
        if busy:
            if self.progress.maximum() > 0:
                self._progress_kept = self.progress.value()
            self.progress.setRange(0, 0)
        elif self.progress.maximum() == 0:
            # the busy range reset the value to -1 (a blank bar): show the step's progress again
            self.progress.setRange(0, PROGRESS_MAX)
            self.progress.setValue(self._progress_kept)

    def set_device(self, text: str) -> None:
        self.labels["device"].setText(text)

    def set_best(self, best_val: float | None) -> None:
        self.labels["best"].setText(f"best val {fmt.loss(best_val)}")

    def set_speed_note(self, text: str) -> None:
        self.labels["speed"].setToolTip(f"{TIPS['speed']}. {text}")

    def flush(self) -> None:
        """Show the newest step now (the run ended: nothing newer will come)."""
        self.step_shown.flush()

    def clear_run(self) -> None:
        """A new run or another model: nothing of the previous one stays on show."""
        self.step_shown.cancel()
        for key in RUN_FIELDS:
            self.labels[key].setText("—")
        self.labels["elapsed"].setToolTip(TIPS["elapsed"])  # a run's, no longer a model's
        self.progress.setValue(0)

    def clear_eta(self) -> None:
        self.labels["eta"].setText("—")

    def show_checkpoint(self, train: Any) -> None:
        """Where an opened checkpoint (``charlstm_core.files.modelfile.TrainState``) stands: its
        step and the model's training time (all its runs)."""
        self.step_shown.cancel()
        self.labels["step"].setText(f"step {train.step:,}")
        self.labels["elapsed"].setText(measures.duration_text(train.elapsed_s))
        self.labels["elapsed"].setToolTip("The model's training time: all its runs")
        self.set_best(train.best_val_loss)
        total = max(train.total_steps, 1)
        self._set_progress(min(train.step / total, 1.0), None)

    def show_step(self, ev: Any, eta_s: float | None) -> None:
        """The newest ``charlstm_core.events.StepEvent`` and the run's time left (None:
        unknown; the event's own ``eta_s``), shown at most ``LIVE_HZ`` times a second (the
        newest wins, the last one lands)."""
        self.step_shown(ev, eta_s)

    def _show_step(self, ev: Any, eta_s: float | None) -> None:
        total = measures.count_text(ev.total_steps, ev.total_is_estimate)
        self.labels["step"].setText(f"step {ev.step:,} / {total}")
        self.labels["epoch"].setText(f"epoch {ev.epoch:.2f}")
        self.labels["speed"].setText(_speed(ev.chars_per_sec))
        self.labels["elapsed"].setText(measures.duration_text(ev.duration_s))
        self.labels["eta"].setText(f"ETA {measures.duration_text(eta_s)}")
        done = measures.fraction_done(
            ev.step, ev.total_steps, ev.duration_s, eta_s, ev.total_is_estimate
        )
        self._set_progress(done, done)

    def show_end(self, summary: Any) -> None:
        """A run ended (``charlstm_core.events.TrainSummary``): its final duration and chars/s,
        its final save included, as the Runs tab and ``charlstm runs`` show them."""
        self.step_shown.flush()  # the last step first (its epoch), then the run's end over it
        self.labels["speed"].setText(_speed(summary.chars_per_sec))
        self.labels["elapsed"].setText(measures.duration_text(summary.duration_s))
        self.labels["eta"].setText("—")
        if summary.reason == "completed":
            self.labels["step"].setText(f"step {summary.steps:,} / {summary.steps:,}")
            self._set_progress(1.0, 1.0)

    def _set_progress(self, fraction: float, text: float | None) -> None:
        """The bar at ``fraction`` (0..1), labelled with ``text`` as a percentage (None: as it
        was)."""
        self.progress.setValue(int(PROGRESS_MAX * fraction))
        if text is not None:
            self.progress.setFormat(f"{100 * text:.0f}%")


def _speed(chars_per_sec: float | None) -> str:
    """``12.3k chars/s`` (an em dash when unknown)."""
    if chars_per_sec is None or not math.isfinite(chars_per_sec):
        return "— chars/s"
    return f"{fmt.count(chars_per_sec)} chars/s"
