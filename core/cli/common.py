"""What the command line's commands share: exit statuses, defaults, the engine for ``--device``."""

from __future__ import annotations

import argparse

from ..config import ModelConfig
from ..engine.devices import make_engine
from ..engine.protocol import Engine

DEFAULT_MINUTES = 10.0  # how long `charlstm train` runs when no --steps/--epochs/--minutes is given
DEBUG_ENV = "CHARLSTM_DEBUG"  # set to 1 to see the traceback of an unexpected error
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
SWEEP_DEFAULTS = {"sample_every": 0}  # a sweep's own defaults: samples only cost it time


def engine_for(args: argparse.Namespace, cfg: ModelConfig) -> Engine:
    """The engine for ``--device`` (DeviceUnavailableError: one line saying why)."""
    return make_engine(args.device, cfg)
