"""The engine contract: what training, evaluation, sampling, inspection and timing call.

Every device's engine implements all of it (``CpuEngine``, charlstm_core.engine.cpu; the CuPy
engine ``XpEngine``, charlstm_core.engine.gpu), and a caller never asks which engine it holds:
it gets one from ``charlstm_core.engine.devices.make_engine`` (an engine, a ``Backend`` or a
device choice such as "cpu") and calls these methods.

Arrays: ``Array`` is an array of the engine's device (a NumPy array on the CPU, a CuPy array on
a GPU). Ids, targets and flags come in as NumPy arrays; whatever a caller reads (logits,
activations, losses) comes back as NumPy arrays or floats. Parameters and gradients are dicts
keyed by PyTorch's names (charlstm_core.engine.model.param_shapes) of device arrays; a state is
(h, c), each (L, B, H), on the device. Logits: (B, V) for ``step``, (T, V) for ``trace``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..config import ModelConfig
from .model import Prepared
from .optim import Adam

Array = Any  # an array of the engine's device
Params = dict[str, Array]
State = tuple[Array, Array]
Layers = list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per layer (h, c, z), see trace


@runtime_checkable
class Engine(Protocol):
    """One device's engine (see the module docstring for arrays and shapes)."""

    cfg: ModelConfig  # the model this engine runs
    label: str  # where it runs, for people: "CPU", "GPU 0: NVIDIA H200 (141 GiB)"

    def for_config(self, cfg: ModelConfig) -> Engine:
        """This engine (same device and settings) for another model."""
        ...

    # ------------------------------------------------------------ arrays on the device

    def to_device(self, a: np.ndarray) -> Array:
        """``a`` on the device (the CPU: ``a`` itself)."""
        ...

    def to_host(self, a: Array) -> np.ndarray:
        """``a`` as a NumPy array (the CPU: ``a`` itself)."""
        ...

    def zero_state(self, batch: int) -> State:
        """Zero (h, c), each (L, batch, H), on the device."""
        ...

    def copy(self, a: Array) -> Array:
        """A copy of ``a`` on the device (the trainer's keep point, charlstm_core.training.heal)."""
        ...

    def copy_into(self, src: Params, dst: Params | None) -> Params:
        """``src``'s arrays copied into ``dst``'s (same keys and shapes), or into new ones."""
        ...

    # ------------------------------------------------------------ training

    def adam(
        self,
        params: Params,
        *,
        m: dict[str, np.ndarray] | None = None,
        v: dict[str, np.ndarray] | None = None,
        t: int = 0,
    ) -> Adam:
        """Adam's state for ``params`` on the device (``m``, ``v``, ``t``: a saved one)."""
        ...

    def loss_and_grads(
        self,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        state: State,
        dropout_rng: np.random.Generator | None = None,
    ) -> tuple[float, Params, State]:
        """One training pass: x, y (B, T) input and target ids, the state carried in →
        (mean cross-entropy in nats/char, gradients keyed like ``params``, final state).
        ``dropout_rng``: the masks' random stream (None: no dropout)."""
        ...

    def global_norm(self, grads: Params) -> float:
        """√(Σ g²) over every gradient array."""
        ...

    def update(
        self, adam: Adam, params: Params, grads: Params, lr: float, clip: float, norm: float
    ) -> None:
        """Clip the gradients (global norm ``norm`` to at most ``clip``; 0: no clip) and take one
        Adam step at ``lr``, in place; ``grads`` may be overwritten."""
        ...

    # ------------------------------------------------------------ reading

    def prepare(self, params: dict[str, Any]) -> Prepared:
        """The weights laid out for this engine's passes, on the device (``params``: NumPy
        arrays or device arrays). Build once, read many times."""
        ...

    def mean_loss(self, params: Params, ids: np.ndarray, *, streams: int, seq_len: int) -> float:
        """Mean next-character loss (nats/char) of ``ids`` (N,) cut into ``streams`` pieces side
        by side, each from a zero state, read in windows of ``seq_len`` (the trainer's
        validation; the few characters that do not fill the last column are dropped)."""
        ...

    def scored_loss(
        self,
        prep: Prepared,
        x: np.ndarray,
        y: np.ndarray,
        scored: np.ndarray | None,
        state: State,
    ) -> tuple[float, State]:
        """One window of an evaluation: x, y, scored (B, T) → (Σ next-character loss over the
        positions where ``scored`` (None: all), the state carried on from ``state``)."""
        ...

    def step(self, prep: Prepared, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One character per stream: ids (B,) → logits (B, V) and the next state."""
        ...

    def trace(
        self, prep: Prepared, ids: np.ndarray, state: State
    ) -> tuple[np.ndarray, State, Layers]:
        """One stream read with every activation: ids (T,) → logits (T, V), the final state and
        per layer (h (T, H), c (T, H), z (T, 4H) gates in the order o, i, f, g)."""
        ...
