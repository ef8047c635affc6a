"""The GPU engine: the CPU engine's passes over CuPy, plus what a device must add.

``XpEngine`` is ``charlstm_core.engine.cpu.CpuEngine`` over an array module ``xp``: the same
training pass, evaluation, sampling and inspection, the same layouts (charlstm_core.engine.model)
and the same optimizer (charlstm_core.engine.optim), with only what a device adds:

* the cell's step and Adam as fused kernels (charlstm_core.engine.kernels: one launch per time
  step and layer, forward and backward, and one per parameter for clip + Adam), and the gradient
  of layer 0's gather as atomic adds;
* transfers (``to_device``, ``to_host``), the device made current and CUDA's failures turned
  into the typed errors of charlstm_core.errors (``on_device``);
* dropout masks drawn on the device (``dropout="device"``, see the class docstring);
* no batch slices: the device runs a whole batch's products at once.

With ``xp = numpy`` the same code runs on the CPU, the kernels' formula text evaluated by NumPy:
how the test suite checks it against ``CpuEngine`` (tests/test_xp_engine.py). Model files
are the same: parameters are kept in PyTorch's layouts, so ``to_host`` hands back exactly what
``charlstm_core.files.modelfile`` writes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..errors import DeviceLostError, DeviceUnavailableError, GpuMemoryError
from .cpu import CpuEngine
from .kernels import FusedCell, kernels_for
from .model import Ops, scatter_rows


class XpEngine(CpuEngine):
    """The CPU engine over array module ``xp`` with fused kernels (see the module docstring).

    ``dropout="host"`` draws the masks from the trainer's NumPy generator exactly as the CPU
    engine does (the same masks on either engine: what the cross-check tests use); ``"device"``
    draws one seed from it per step and the masks on the device (no host→device copy of
    L·T·B·H floats per step: the GPU default; still exact on resume, the seed stream being in
    the checkpoint).
    """

    blocked_trace = False  # no CPU caches to block for: one product per step, layers in turn

    def __init__(self, cfg: ModelConfig, xp: Any, *, gpu: int | None = None, label: str = "",
                 dropout: str = "host") -> None:  # fmt: skip
        super().__init__(cfg, workers=1)
        self.xp = xp
        self.label = label or ("CPU (array engine)" if xp is np else "GPU")
        self._gpu = gpu  # the CUDA device number, None with NumPy
        self._dropout = dropout
        kernels = kernels_for(xp)
        scatter = scatter_rows if xp is np else functools.partial(add_at, xp)
        self.ops = Ops(xp, FusedCell(xp, kernels), scatter)
        self.adam_kernel = kernels["adam"]
        self._oom, self._lost = _error_types(xp)

    @contextlib.contextmanager
    def on_device(self) -> Iterator[None]:
        """Run on this engine's GPU; turn CUDA failures into the typed errors of
        charlstm_core.errors."""
        # a new Device object per entry: nesting and threads (a snapshot taken from the GUI
        # thread while the trainer runs) never share one object's saved-device stack
        ctx = contextlib.nullcontext() if self._gpu is None else self.xp.cuda.Device(self._gpu)
        try:
            with ctx:
                yield
        except self._oom:
            raise GpuMemoryError(
                "The GPU ran out of memory. Lower the batch size (or the hidden size or the "
                "sequence length) and continue; the last saved model is kept."
            ) from None
        except self._lost as e:
            raise DeviceLostError(
                f"The GPU stopped responding ({e}). Training stopped; check the GPU "
                "(nvidia-smi) and continue from the last saved model."
            ) from None
        except (OSError, RuntimeError, ImportError) as e:  # CuPy loads cuBLAS, NVRTC on first use
            if self.xp is np or ".so" not in str(e):
                raise
            raise DeviceUnavailableError(
                f"CuPy cannot load a CUDA library ({e}). Install them with "
                "pip install 'cupy-cuda12x[ctk]', or install the CUDA toolkit."
            ) from None

    def to_device(self, a: np.ndarray) -> Any:
        with self.on_device():
            return self.xp.asarray(a)

    def to_host(self, a: Any) -> np.ndarray:
        if self.xp is np:
            return a
        with self.on_device():
            return self.xp.asnumpy(a)

    def masks(self, rng: np.random.Generator | None, T: int, B: int) -> list[Any] | None:
        """Inverted-dropout masks on the device (see the class docstring for the two sources)."""
        cfg, xp = self.cfg, self.xp
        if rng is None or cfg.dropout <= 0.0:
            return None
        if self._dropout == "host":
            return [xp.asarray(m) for m in super().masks(rng, T, B)]
        seed = int(rng.integers(2**63))
        keep = 1.0 - cfg.dropout
        dt = np.dtype(cfg.dtype)
        shape = (cfg.num_layers, T, B, cfg.hidden_size)
        if xp is np:
            u = np.random.default_rng(seed).random(shape, dtype=dt)
        else:
            u = xp.random.RandomState(seed).random_sample(shape, dtype=dt)
        m = (u < keep).astype(dt) * dt.type(1.0 / keep)
        return list(m)


def add_at(xp: Any, ids: Any, rows: Any, n: int) -> Any:
    """out[v] = Σ rows[j] over ids[j] == v, (n, D): the gradient of layer 0's gather, as
    atomic adds on a GPU (the CPU's sorted sums: charlstm_core.engine.model.scatter_rows)."""
    out = xp.zeros((n, rows.shape[1]), rows.dtype)
    xp.add.at(out, ids, rows)
    return out


def _error_types(xp: Any) -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(out-of-memory, device-failure) exception types of ``xp`` (none for NumPy)."""
    if xp is np:
        return (), ()
    cuda = getattr(xp, "cuda", None)
    oom = getattr(getattr(cuda, "memory", None), "OutOfMemoryError", None)
    lost = [getattr(getattr(cuda, "runtime", None), "CUDARuntimeError", None),
            getattr(getattr(cuda, "driver", None), "CUDADriverError", None)]  # fmt: skip
    return (oom,) if oom else (), tuple(t for t in lost if t)
