"""Small formatters for what the window shows: durations, sizes, counts."""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """``0:03:05``, ``1:02:05``; an em dash when unknown: the one duration formatter of the app
    and the command line (charlstm_core.training.measures.duration_text)."""
    from charlstm_core.training.measures import duration_text

    return duration_text(seconds)


def duration_ms(seconds: float | None) -> str:
    """A short time in the unit that reads best: ``850 ms``, ``1.4 s``, then as ``duration``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    if seconds < 0.9995:
        return f"{seconds * 1000:,.0f} ms"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    return duration(seconds)


def size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n_bytes) < 1000 or unit == "GB":
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:,.1f} GB"


def count(n: float) -> str:
    """``950``, ``12.3k``, ``4.56M``."""
    n = float(n)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def loss(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"
