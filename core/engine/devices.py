"""The one place that chooses where training runs: the CPU (NumPy) or an NVIDIA GPU (CuPy).

``resolve_device("auto" | "cpu" | "gpu" | "gpu:N")`` returns a ``Backend``; ``list_devices()``
returns a ``DeviceReport`` (CuPy version, CUDA runtime and driver, each GPU's name and memory,
or the one-line reason none is usable); ``make_engine`` the engine (charlstm_core.engine.protocol)
for a choice, a ``Backend`` or an engine: the one place that looks at which device it is. CuPy
is imported only here and only when a GPU is asked for or listed, never at start-up.
``importer`` lets tests stand in a fake ``cupy`` module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import ModelConfig
from ..errors import ConfigError, DeviceUnavailableError
from .protocol import Engine

DEVICE_CHOICES = ("auto", "cpu", "gpu")
INSTALL_HINT = "pip install 'charlstm[gpu]'"
Importer = Callable[[str], Any]

# CUDA runtime errors worth naming (cudaError_t values)
_NO_DEVICE, _INSUFFICIENT_DRIVER = 100, 35


@dataclass(frozen=True)
class GpuInfo:
    index: int  # CUDA device number
    name: str  # e.g. "NVIDIA H200"
    total_bytes: int  # device memory
    compute_capability: str  # e.g. "9.0"

    @property
    def label(self) -> str:
        return f"GPU {self.index}: {self.name} ({self.total_bytes / 2**30:.0f} GiB)"


@dataclass(frozen=True)
class DeviceReport:
    """What ``list_devices`` found. ``reason`` is None exactly when at least one GPU is usable."""

    cupy_version: str | None
    cuda_runtime: str | None  # "12.4"
    cuda_driver: str | None  # the newest CUDA the installed driver supports
    gpus: tuple[GpuInfo, ...]
    reason: str | None

    @property
    def usable(self) -> bool:
        return self.reason is None and bool(self.gpus)

    def lines(self) -> list[str]:
        """Human lines for ``charlstm devices``."""
        out = ["CPU: NumPy engine (always available)"]
        out.append(f"CuPy: {self.cupy_version or 'not installed'}")
        if self.cuda_runtime or self.cuda_driver:
            out.append(f"CUDA runtime: {self.cuda_runtime or '?'}, "
                       f"driver supports CUDA {self.cuda_driver or '?'}")  # fmt: skip
        out += [g.label + f", compute capability {g.compute_capability}" for g in self.gpus]
        if self.reason:
            out.append(f"GPU: not usable: {self.reason}")
        return out


@dataclass(frozen=True)
class Backend:
    """Where to run: ``kind`` "cpu" or "gpu"; ``xp`` the array module; ``gpu`` the device."""

    kind: str
    xp: Any
    gpu: GpuInfo | None = None

    @property
    def label(self) -> str:
        return "CPU" if self.gpu is None else self.gpu.label


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _import_cupy(importer: Importer | None) -> Any:
    return (importer or importlib.import_module)("cupy")


def list_devices(importer: Importer | None = None) -> DeviceReport:
    """Probe CuPy and the CUDA devices; never raises (the reason says what went wrong)."""
    try:
        cp = _import_cupy(importer)
    except ImportError:
        return DeviceReport(None, None, None, (), f"CuPy is not installed: {INSTALL_HINT}")
    except Exception as e:  # a broken install (missing CUDA libraries) fails here
        return DeviceReport(None, None, None, (), f"CuPy cannot be imported ({e})")
    version = str(getattr(cp, "__version__", "?"))
    rt = cp.cuda.runtime
    runtime = driver = None
    try:
        runtime = _cuda_version(int(rt.runtimeGetVersion()))
        drv = int(rt.driverGetVersion())
        driver = _cuda_version(drv) if drv else None
    except Exception as e:
        return DeviceReport(version, runtime, driver, (), f"the CUDA runtime cannot start ({e})")
    if driver is None:
        return DeviceReport(version, runtime, None, (), "no NVIDIA driver found")
    try:
        count = int(rt.getDeviceCount())
    except Exception as e:
        status = getattr(e, "status", None)
        if status == _NO_DEVICE:
            reason = "no CUDA device found"
        elif status == _INSUFFICIENT_DRIVER:
            reason = _driver_too_old(runtime, driver)
        else:
            reason = f"CUDA cannot list the devices ({e})"
        return DeviceReport(version, runtime, driver, (), reason)
    if count == 0:
        return DeviceReport(version, runtime, driver, (), "no CUDA device found")
    if _newer(runtime, driver):
        return DeviceReport(version, runtime, driver, (), _driver_too_old(runtime, driver))
    gpus = []
    for i in range(count):
        p = rt.getDeviceProperties(i)
        name = p.get("name", b"?")
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        gpus.append(GpuInfo(i, name, int(p.get("totalGlobalMem", 0)),
                            f"{p.get('major', '?')}.{p.get('minor', '?')}"))  # fmt: skip
    return DeviceReport(version, runtime, driver, tuple(gpus), None)


def _newer(a: str, b: str) -> bool:
    return tuple(map(int, a.split("."))) > tuple(map(int, b.split(".")))


def _driver_too_old(runtime: str | None, driver: str | None) -> str:
    major = (runtime or "12").split(".")[0]
    return (
        f"the NVIDIA driver supports CUDA {driver or '?'} but this CuPy needs CUDA {runtime}: "
        f"update the driver, or install the CuPy wheel for an older CUDA "
        f"(pip install cupy-cuda{int(major) - 1}x)"
    )


def parse_choice(choice: str) -> tuple[str, int | None]:
    """'auto' | 'cpu' | 'gpu' | 'gpu:N' → (kind, index or None); ConfigError otherwise."""
    c = choice.strip().lower()
    if c in DEVICE_CHOICES:
        return c, None
    if c.startswith("gpu:") and c[4:].isdigit():
        return "gpu", int(c[4:])
    raise ConfigError(f"The device must be auto, cpu, gpu or gpu:N (a GPU number), not {choice!r}.")


def resolve_device(choice: str = "auto", importer: Importer | None = None) -> Backend:
    """The backend for a choice. ``auto``: the first usable GPU, else the CPU, silently.
    ``gpu`` when none is usable raises DeviceUnavailableError with the one-line reason."""
    kind, index = parse_choice(choice)
    if kind == "cpu":
        return Backend("cpu", _numpy())
    report = list_devices(importer)
    if not report.usable:
        if kind == "auto":
            return Backend("cpu", _numpy())
        raise DeviceUnavailableError(f"The GPU cannot be used: {report.reason}.")
    if index is None:
        index = 0
    match = [g for g in report.gpus if g.index == index]
    if not match:
        raise DeviceUnavailableError(
            f"There is no GPU {index}: found {len(report.gpus)} (numbered from 0)."
        )
    return Backend("gpu", _import_cupy(importer), match[0])


def _numpy() -> Any:
    import numpy

    return numpy


def make_engine(
    device: Engine | Backend | str, cfg: ModelConfig, importer: Importer | None = None
) -> Engine:
    """The engine for ``cfg`` on ``device``: an engine (the same device and settings, rebound to
    ``cfg``), a ``Backend``, or a choice string ("cpu", "gpu", "gpu:N", "auto", as
    ``resolve_device``). The CPU: ``CpuEngine``; a GPU: the CuPy ``XpEngine``."""
    from .cpu import CpuEngine
    from .gpu import XpEngine

    if isinstance(device, Engine):
        return device.for_config(cfg)
    backend = resolve_device(device, importer) if isinstance(device, str) else device
    if backend.kind == "cpu":
        return CpuEngine(cfg)
    return XpEngine(cfg, backend.xp, gpu=backend.gpu.index, label=backend.label, dropout="device")
