"""The fused elementwise kernels of the array-module engine, written once for CuPy and NumPy.

Each kernel is a list of assignments that are valid both as CUDA C++ statements and as Python
expressions (only ``+ - * /``, ``exp``, ``tanh``, ``sqrt``, names and integer literals: an integer
literal keeps ``float`` arithmetic in C and ``float32`` arithmetic in NumPy, where ``0.5`` would
promote to double in C). With CuPy the text becomes the body of one ``cupy.ElementwiseKernel``
(one launch per call, every intermediate in registers); with NumPy the very same text is
evaluated statement by statement on whole arrays, which is how the CPU test suite checks the
formulas that the GPU runs. Nothing here imports CuPy.

The kernels run the maths of ``charlstm_core.engine.cell`` in its layout (gate order o, i, f, g;
scaled pre-activations, so that σ(a) = 1 / (1 + e^z) with z = -a and tanh a = 2 / (1 + e^z) - 1
with z = -2a), one launch per step where ``Cell`` makes a dozen passes. ``FusedCell`` puts them
behind ``Cell``'s interface, so a device's engine runs the very passes of the CPU engine. The
step (``z`` = the scaled W_hh h_{t-1}, ``x`` = the scaled W_ih x_t + b)::

    o, i, f = 1 / (1 + e^(z + x)) = σ(a)      g = 2 / (1 + e^(z + x)) - 1 = tanh(a)
    c = f ⊙ c_{t-1} + i ⊙ g                    h = o ⊙ tanh(c)

and its gradient, with ``dc`` = f_{t+1} ⊙ ∂L/∂c_{t+1} carried backward in time::

    dh = dy + dh_rec                 dc' = dc + (1 - tanh²c) ⊙ o ⊙ dh
    da_o = o(1 - o) ⊙ tanh c ⊙ dh    da_i = i(1 - i) ⊙ g ⊙ dc'
    da_f = f(1 - f) ⊙ c_{t-1} ⊙ dc'  da_g = (1 - g²) ⊙ i ⊙ dc'      dc ← dc' ⊙ f

each statement in ``Cell``'s order of operations, so that under NumPy the kernels and ``Cell``
agree bit for bit (tests/test_cell.py); in CUDA the compiler may contract a product and a sum
into one rounding (fused multiply-add), a float32 rounding's difference. Adam with the
global-norm clip folded in (``scale``, ``charlstm_core.engine.optim.clip_scale``) follows
``charlstm_core.engine.optim.Adam`` operation for operation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cell import gates_of


@dataclass(frozen=True)
class Fused:
    """One elementwise kernel: typed inputs, outputs (read-write) and register temporaries."""

    name: str
    inputs: tuple[str, ...]  # arrays and scalars read; every one has the element type T
    outputs: tuple[str, ...]  # arrays written (and readable after being written, or before)
    temps: tuple[str, ...]  # per-element temporaries
    body: tuple[str, ...]  # "name = expression" statements, valid C++ and Python

    def cuda_source(self) -> tuple[str, str, str]:
        """(in_params, out_params, operation) for ``cupy.ElementwiseKernel``."""
        ins = ", ".join(f"T {n}" for n in self.inputs)
        outs = ", ".join(f"T {n}" for n in self.outputs)
        decl = "".join(f"T {n}; " for n in self.temps)
        return ins, outs, decl + " ".join(f"{s};" for s in self.body)


LSTM_FORWARD = Fused(
    name="charlstm_lstm_forward",
    inputs=("zo", "zi", "zf", "zg", "xo", "xi", "xf", "xg", "cp"),
    outputs=("og", "ig", "fg", "gg", "c", "tc", "h"),
    temps=(),
    body=(
        "og = 1 / (1 + exp(zo + xo))",
        "ig = 1 / (1 + exp(zi + xi))",
        "fg = 1 / (1 + exp(zf + xf))",
        "gg = 2 / (1 + exp(zg + xg)) - 1",
        "c = fg * cp + ig * gg",
        "tc = tanh(c)",
        "h = og * tc",
    ),
)

LSTM_BACKWARD = Fused(
    name="charlstm_lstm_backward",
    inputs=("dy", "dhr", "og", "ig", "fg", "gg", "tc", "cp"),
    outputs=("dao", "dai", "daf", "dag", "dc"),
    temps=("dh", "dcn"),
    body=(
        "dh = dy + dhr",
        "dcn = dc + (1 - tc * tc) * og * dh",
        "dao = (1 - og) * og * tc * dh",
        "dai = (1 - ig) * ig * gg * dcn",
        "daf = (1 - fg) * fg * cp * dcn",
        "dag = (1 - gg * gg) * ig * dcn",
        "dc = dcn * fg",
    ),
)

ADAM = Fused(
    name="charlstm_adam",
    inputs=("grad", "scale", "b1", "b2", "omb1", "omb2", "step_size", "inv_bias2", "eps"),
    outputs=("p", "m", "v"),
    temps=("gs",),
    body=(
        "gs = grad * scale",
        "m = b1 * m + omb1 * gs",
        "v = b2 * v + omb2 * (gs * gs)",
        "p = p - step_size * (m / (sqrt(v) * inv_bias2 + eps))",
    ),
)

KERNELS = (LSTM_FORWARD, LSTM_BACKWARD, ADAM)

_ALLOWED = re.compile(r"^[A-Za-z_][A-Za-z_0-9]* = [A-Za-z_0-9+\-*/() ]+$")
_FUNCS = {"exp", "tanh", "sqrt"}
_RESERVED = {"i", "n"}  # CuPy's loop index and size inside an ElementwiseKernel


def check_portable(k: Fused) -> None:
    """Raise ValueError unless every statement is in the C/Python common subset described above
    and reads only declared names (a typo would otherwise surface only when NVRTC compiles it)."""
    declared = set(k.inputs) | set(k.outputs) | set(k.temps)
    if declared & _RESERVED or any(n.startswith("_") for n in declared):
        raise ValueError(f"{k.name}: uses a name CuPy reserves: {sorted(declared & _RESERVED)}")
    assigned: set[str] = set()
    for s in k.body:
        if not _ALLOWED.match(s) or "." in s or "**" in s or "//" in s:
            raise ValueError(f"{k.name}: not portable C/Python: {s!r}")
        target, expr = s.split(" = ", 1)
        if target not in set(k.outputs) | set(k.temps):
            raise ValueError(f"{k.name}: assigns an undeclared or input name: {s!r}")
        for name in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", expr):
            if name in _FUNCS:
                continue
            if name not in declared:
                raise ValueError(f"{k.name}: reads an undeclared name {name!r}")
            if name in k.temps and name not in assigned:
                raise ValueError(f"{k.name}: reads temporary {name!r} before assigning it")
        assigned.add(target)


def numpy_kernel(k: Fused) -> Callable[..., None]:
    """The reference: ``f(*inputs, *outputs)`` evaluates ``k.body`` with NumPy, writing outputs
    in place (they may be strided views), each rounded to its dtype as the C kernel stores it."""
    check_portable(k)
    code = [(s.split(" = ", 1)[0], compile(s.split(" = ", 1)[1], k.name, "eval")) for s in k.body]
    outs = set(k.outputs)

    def run(*args: Any) -> None:
        n_in = len(k.inputs)
        env: dict[str, Any] = {"exp": np.exp, "tanh": np.tanh, "sqrt": np.sqrt}
        env.update(zip(k.inputs, args[:n_in], strict=True))
        env.update(zip(k.outputs, args[n_in:], strict=True))
        with np.errstate(over="ignore"):  # exp(-a) = inf for a ≪ 0 gives σ = 0, as in C
            for target, expr in code:
                value = eval(expr, {"__builtins__": {}}, env)  # noqa: S307 - our own constant text
                if target in outs:
                    env[target][...] = value
                else:
                    env[target] = value

    return run


def cupy_kernel(cupy: Any, k: Fused) -> Callable[..., None]:
    """``k`` as one ``cupy.ElementwiseKernel``, built on first call (NVRTC compiles it then)."""
    check_portable(k)
    built: list[Any] = []

    def run(*args: Any) -> None:
        if not built:
            built.append(cupy.ElementwiseKernel(*k.cuda_source(), k.name))
        built[0](*args)

    return run


def kernels_for(xp: Any) -> dict[str, Callable[..., None]]:
    """The three kernels for array module ``xp`` (NumPy: the references), keyed by short name."""
    make = numpy_kernel if xp is np else (lambda k: cupy_kernel(xp, k))
    return {"forward": make(LSTM_FORWARD), "backward": make(LSTM_BACKWARD), "adam": make(ADAM)}


class FusedCell:
    """``charlstm_core.engine.cell.Cell``'s interface over the fused kernels of ``kernels_for``:
    one launch per step forward and one backward, the gates written over ``z`` in place (each
    element read and written at the same address, which an elementwise kernel allows)."""

    def __init__(self, xp: Any, kernels: dict[str, Callable[..., None]]) -> None:
        self.xp = xp
        self._forward, self._backward = kernels["forward"], kernels["backward"]

    def forward(self, z: Any, x: Any, c_prev: Any, c: Any, h: Any, *, tc: Any = None,
                tmp: Any = None, axis: int = 0) -> None:  # fmt: skip
        """As ``Cell.forward`` (``tmp`` is not needed: the kernel keeps its values in
        registers)."""
        zs = gates_of(z, axis)
        if tc is None:
            tc = self.xp.empty_like(c)
        self._forward(*zs, *gates_of(x, axis), c_prev, *zs, c, tc, h)

    def backward(self, dy: Any, dh_rec: Any, z: Any, tc: Any, c_prev: Any, dc: Any, da: Any,
                 work: Any = None) -> None:  # fmt: skip
        """As ``Cell.backward`` (``work`` is not needed)."""
        self._backward(dy, dh_rec, *gates_of(z, 0), tc, c_prev, *gates_of(da, 0), dc)
