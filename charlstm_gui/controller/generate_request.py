"""What the Generate panel asks the controller for: one sampling run's settings.

Its own module so that the panel, the window and the controller share it without the panel
importing the controller (and with it the worker threads and the engine's plumbing).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerateRequest:
    """The arguments of ``charlstm_core.sample.generate`` besides the model."""

    prime: str = ""  # the text the model continues
    length: int = 500  # characters to generate
    temperature: float = 0.8
    top_k: int = 0  # 0: sample from every character
    seed: int | None = None  # None: a fresh seed each time
