"""The small immutable events the trainer yields, and the summary it returns; and the few a
training session (charlstm_core.training.session) yields around them.

They hold only floats, ints and strings, so they can cross from a worker thread to the GUI thread
as they are. ``asdict(event) | {"event": event.kind}`` is what ``--log-jsonl`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepEvent:
    kind = "step"
    step: int  # optimizer steps done so far (1 after the first)
    total_steps: int  # planned run length (an estimate while a --minutes run warms up)
    epoch: float  # passes over the training text so far
    chars_seen: int  # training characters consumed so far (step * batch_size * seq_len)
    loss: float  # mean cross-entropy of this batch, nats per character
    lr: float  # learning rate used for this step
    grad_norm: float  # global gradient norm before clipping
    chars_per_sec: float  # the run's chars/s so far (charlstm_core.training.measures; NaN: none)
    elapsed_s: float  # the model's training time: this run's duration and its earlier runs'
    duration_s: float = 0.0  # this run's duration so far (charlstm_core.training.measures)
    eta_s: float | None = None  # the run's time left, its final validation and save included
    total_is_estimate: bool = False  # total_steps is a time budget's estimate ("about N")


@dataclass(frozen=True)
class EvalEvent:
    kind = "eval"
    step: int
    val_loss: float  # mean cross-entropy over the validation text, nats per character
    best_val_loss: float  # best val_loss so far in this model's life
    elapsed_s: float


@dataclass(frozen=True)
class SampleEvent:
    kind = "sample"
    step: int
    text: str
    temperature: float
    val_loss: float | None  # the latest validation loss at the time of the sample, if any


@dataclass(frozen=True)
class CheckpointEvent:
    kind = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class RollbackEvent:
    """Training blew up and healed itself: the kept state of ``to_step`` was restored exactly and
    the learning rate cut so that the rest of the run stays at or below ``lr_after``."""

    kind = "rollback"
    from_step: int  # the step that blew up (its update, and those since to_step, are undone)
    to_step: int  # the step whose kept weights, optimizer and stream state were restored
    lr_before: float  # learning rate of the step that blew up
    lr_after: float  # the highest learning rate the rest of the run uses (lr_before / 2)
    lr_scale: float  # the run's learning-rate multiplier from now on (1.0 before any rollback)
    reason: str  # what was detected, in words
    loss: float | None  # the loss of the step that blew up (None when it was not finite)

    def describe(self) -> str:
        """'rolled back to step 1,200; learning rate 8e-3 → 4e-3' (for a plot or a log line)."""
        return (
            f"rolled back to step {self.to_step:,}; learning rate {format_lr(self.lr_before)} → "
            f"{format_lr(self.lr_after)}"
        )


def format_lr(lr: float) -> str:
    """A learning rate in short scientific notation: 8e-3, 3.2e-1 (two significant digits)."""
    mantissa, exponent = f"{lr:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class TrainSummary:
    steps: int  # total optimizer steps in the model's life
    reason: str  # "completed" or "stopped"
    best_val_loss: float | None
    elapsed_s: float  # the model's training time (all its runs)
    checkpoint_path: str | None  # where the final checkpoint went, if one was written
    rollbacks: int = 0  # rollbacks (self-healings) in this session, see RollbackEvent
    duration_s: float = 0.0  # this run's duration, its final save included (training.measures)
    chars_per_sec: float | None = None  # this run's chars/s (charlstm_core.training.measures)


Event = StepEvent | EvalEvent | SampleEvent | CheckpointEvent | RollbackEvent


# ------------------------------------------------------------------ a session's own events


@dataclass(frozen=True)
class SessionStarted:
    """The session's trainer is built (and its run recorded): training begins."""

    kind = "started"
    step: int  # the model's step now (0 for a new model)
    total_steps: int  # the planned run length (an estimate for a --minutes run)
    device: str  # where the passes run: "CPU" or the GPU's name and memory
    run_id: int | None  # the run store's id of this run (None: not recorded)
    model_path: str | None  # where the model is saved (None: nowhere)


@dataclass(frozen=True)
class ThreadsChosen:
    """The BLAS thread count measured on the first steps (charlstm_core.training.threads)."""

    kind = "threads"
    threads: int
    explanation: str  # "BLAS threads: 2 (measured on the first steps: ...)"


@dataclass(frozen=True)
class RecordingProblem:
    """The run store cannot be used: this run is not (or no longer) recorded; training goes on."""

    kind = "recording_problem"
    message: str  # one sentence that names the file and says what to do


@dataclass(frozen=True)
class SavedElsewhere:
    """The model file could not be written: the model went to ``path`` in the fallback folder."""

    kind = "saved_elsewhere"
    step: int
    target: str  # the file that could not be written (it keeps its previous contents)
    path: str  # where the model is saved instead
    reason: str  # why the target could not be written


SessionEvent = SessionStarted | ThreadsChosen | RecordingProblem | SavedElsewhere
