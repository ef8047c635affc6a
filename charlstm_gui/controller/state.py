"""The app's state machine: its states, the events that move it, and the one table of moves.

    idle ──start──▶ starting ──started──▶ training ◀──paused / resumed──▶ paused
                        │                     │                              │
                        └──────stop───────────┴────────────stop──────────────┴──▶ stopping
    starting, training, paused, stopping ──ended──▶ idle
    idle ──sweep──▶ sweeping ──start point──▶ starting …  ──point ended──▶ sweeping
    sweeping ──sweep ended──▶ idle

``TRANSITIONS`` is the whole truth: (state, event) -> next state. ``StateMachine.fire`` is the
only place the state changes; a pair that is not in the table is a bug of the caller (a worker's
report in an order no one planned), refused with ``IllegalTransition`` in development and, in
the field, logged and ignored. Ignored, because the app then stays in a state it can explain and
the user's model and run are kept; a traceback dialog over a training run would help no one.

Not states, because they overlap the states above: loading and saving (a text and a model load
at once when the app opens a model file, and a save runs beside training) are the controller's
``busy``; generating runs beside training too (``Generation``). The actions follow all three.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

# Set to 1 (the GUI tests do), or run Python with ``-X dev``, to raise on an illegal move.
STRICT_ENV = "CHARLSTM_STRICT_STATES"


class State(enum.Enum):
    IDLE = "idle"
    # a sweep is on and the app's trainer has no run: timing its points, between two points,
    # or its points training elsewhere (processes here, a cluster)
    SWEEPING = "sweeping"
    STARTING = "starting"  # the trainer is being built (splitting and encoding the text)
    TRAINING = "training"
    PAUSED = "paused"
    STOPPING = "stopping"  # stop asked; the run ends at the next step


# a run of the app's trainer exists (its worker thread runs)
RUN_STATES = frozenset({State.STARTING, State.TRAINING, State.PAUSED, State.STOPPING})


class Event(enum.Enum):
    START = "start"  # the user starts a run: Train, Continue
    SWEEP = "sweep"  # a sweep begins
    START_POINT = "start point"  # the sweep starts the run of its next point
    STARTED = "started"  # the session began training (its first event, SessionStarted)
    PAUSED = "paused"  # the worker parked between two steps (after a Pause)
    RESUMED = "resumed"  # the worker goes on (after a Resume, or a Stop while parked)
    STOP = "stop"  # Stop, or Cancel Sweep during a run
    ENDED = "ended"  # the run ended: finished, stopped or failed
    POINT_ENDED = "point ended"  # the run of a sweep's point ended
    SWEEP_ENDED = "sweep ended"  # the sweep ended: all points done, cancelled or failed


S, E = State, Event
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.IDLE, E.START): S.STARTING,
    (S.IDLE, E.SWEEP): S.SWEEPING,
    (S.SWEEPING, E.START_POINT): S.STARTING,
    (S.SWEEPING, E.SWEEP_ENDED): S.IDLE,
    (S.STARTING, E.STARTED): S.TRAINING,
    (S.STARTING, E.STOP): S.STOPPING,
    (S.STARTING, E.ENDED): S.IDLE,  # it failed before its first step (text, settings, device)
    (S.STARTING, E.POINT_ENDED): S.SWEEPING,
    (S.TRAINING, E.PAUSED): S.PAUSED,
    (S.TRAINING, E.STOP): S.STOPPING,
    (S.TRAINING, E.ENDED): S.IDLE,
    (S.TRAINING, E.POINT_ENDED): S.SWEEPING,
    (S.PAUSED, E.RESUMED): S.TRAINING,
    (S.PAUSED, E.STOP): S.STOPPING,
    (S.PAUSED, E.ENDED): S.IDLE,  # a copy of the weights failed while parked; or the app closed
    (S.PAUSED, E.POINT_ENDED): S.SWEEPING,
    (S.STOPPING, E.ENDED): S.IDLE,
    (S.STOPPING, E.POINT_ENDED): S.SWEEPING,
    # the worker's news that a Stop overtook (sent before the stop reached it): nothing changes
    (S.STOPPING, E.STARTED): S.STOPPING,
    (S.STOPPING, E.PAUSED): S.STOPPING,
    (S.STOPPING, E.RESUMED): S.STOPPING,
}
del S, E


class IllegalTransition(RuntimeError):
    """An event the state it arrived in does not allow (a bug of the app, not of the user)."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(
            f"The app's state machine got “{event.value}” while {state.value}; "
            "no such transition is allowed (charlstm_gui.controller.state.TRANSITIONS)."
        )
        self.state, self.event = state, event


def strict_default() -> bool:
    """Development raises on an illegal move (``python -X dev``, or ``STRICT_ENV`` set to 1);
    the field logs it and stays where it is."""
    return bool(sys.flags.dev_mode) or os.environ.get(STRICT_ENV) == "1"


class StateMachine:
    """The current state and the one way to change it, ``fire(event)`` by ``TRANSITIONS``;
    ``on_change(state)`` is called after each real change (not after a move to the same state)."""

    def __init__(
        self, on_change: Callable[[State], None] = lambda state: None, *, strict: bool | None = None
    ) -> None:
        self.state = State.IDLE
        self.on_change = on_change
        self.strict = strict_default() if strict is None else strict

    def allows(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def fire(self, event: Event) -> bool:
        """Move by ``event``; False (the state unchanged) when the table does not allow it."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            if self.strict:
                raise IllegalTransition(self.state, event)
            log.warning("ignored: %s", IllegalTransition(self.state, event))
            return False
        if new is not self.state:
            self.state = new
            self.on_change(new)
        return True
