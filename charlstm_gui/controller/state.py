"""The controller's states: idle -> starting -> training <-> paused -> stopping -> idle."""

from __future__ import annotations

import enum


class State(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"  # the trainer is being built (splitting and encoding the text)
    TRAINING = "training"
    PAUSED = "paused"
    STOPPING = "stopping"  # stop asked; the run ends at the next step
