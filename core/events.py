"""The small immutable events the trainer yields, and the summary it returns.

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
    chars_per_sec: float  # training throughput over the recent steps
    elapsed_s: float  # wall-clock seconds spent training in this session and earlier ones


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
class TrainSummary:
    steps: int  # total optimizer steps in the model's life
    reason: str  # "completed" or "stopped"
    best_val_loss: float | None
    elapsed_s: float
    checkpoint_path: str | None  # where the final checkpoint went, if one was written


Event = StepEvent | EvalEvent | SampleEvent | CheckpointEvent
