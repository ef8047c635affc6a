"""The main window's status bar: what the app is doing, the device, and the run's figures.

Permanent labels (state, device, step, epoch, speed, elapsed, ETA, best validation loss) and a
progress bar toward the end of the run; while a text or model loads the bar turns into a busy
bar and afterwards shows the step's progress again. It only shows what it is given: the
figures come from the controller's events and the ETA from the controller.

A step's figures arrive with every batch of events (up to 30 a second); they are shown at the
live views' rate (``widgets.throttle.LIVE_HZ``, the newest step, the last one always), since each
new text re-lays out and repaints the bar, and the GUI thread's time is the training's
(``benchmarks/bench_app_vs_cli.py``).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from ..widgets import fmt
from ..widgets.throttle import LIVE_HZ, Throttle

TIPS = {
    "state": "What the app is doing",
    "device": "Where training runs (the Device setting)",
    "step": "Optimizer steps done / planned",
    "epoch": "Passes over the training text",
    "speed": "Training characters per second",
    "elapsed": "Training time of this model",
    "eta": "Estimated time left",
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
        self.labels["speed"].setToolTip(f"Training characters per second. {text}")

    def flush(self) -> None:
        """Show the newest step now (the run ended: nothing newer will come)."""
        self.step_shown.flush()

    def clear_run(self) -> None:
        """A new run or another model: nothing of the previous one stays on show."""
        self.step_shown.cancel()
        for key in RUN_FIELDS:
            self.labels[key].setText("—")
        self.progress.setValue(0)

    def clear_eta(self) -> None:
        self.labels["eta"].setText("—")

    def show_checkpoint(self, train: Any) -> None:
        """Where an opened checkpoint (``charlstm_core.files.modelfile.TrainState``) stands."""
        self.step_shown.cancel()
        self.labels["step"].setText(f"step {train.step:,}")
        self.labels["elapsed"].setText(fmt.duration(train.elapsed_s))
        self.set_best(train.best_val_loss)
        self._set_progress(train.step, train.total_steps, with_text=False)

    def show_step(self, ev: Any, eta_s: float | None) -> None:
        """The newest ``charlstm_core.events.StepEvent`` and the time left (None: unknown),
        shown at most ``LIVE_HZ`` times a second (the newest wins, the last one lands)."""
        self.step_shown(ev, eta_s)

    def _show_step(self, ev: Any, eta_s: float | None) -> None:
        self.labels["step"].setText(f"step {ev.step:,} / {ev.total_steps:,}")
        self.labels["epoch"].setText(f"epoch {ev.epoch:.2f}")
        self.labels["speed"].setText(f"{fmt.count(ev.chars_per_sec)} chars/s")
        self.labels["elapsed"].setText(fmt.duration(ev.elapsed_s))
        self.labels["eta"].setText(f"ETA {fmt.duration(eta_s)}")
        self._set_progress(ev.step, ev.total_steps, with_text=True)

    def _set_progress(self, step: int, total_steps: int, *, with_text: bool) -> None:
        total = max(total_steps, 1)
        self.progress.setValue(int(PROGRESS_MAX * min(step / total, 1.0)))
        if with_text:
            self.progress.setFormat(f"{100 * step / total:.0f}%")
