"""Plot axes that read well: counts with k/M and separators, and a log loss axis with enough labels.

pyqtgraph prints large tick values in full ("200000") and, on a log axis, labels only powers of
ten and a few minor ticks — four labels for a loss falling from 4.2 to 1.2. ``CountAxis`` writes
``200k``, ``1.5M``, ``2,500``; ``LossAxis`` in log mode puts ticks at round loss values (1.5, 2,
2.5, 3 …, chosen by the visible range and the axis's height) and labels them with the loss.
"""

from __future__ import annotations

import math

import pyqtgraph as pg

NICE = (1.0, 2.0, 2.5, 5.0)


def nice_step(span: float, target: int) -> float:
    """The 1-2-2.5-5 x 10^k step that cuts ``span`` into about ``target`` pieces."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    return next((n * mag for n in NICE if n * mag >= raw), 10 * mag)


def count_label(value: float, spacing: float) -> str:
    """A tick label of a count: ``950``, ``2,500``, ``200k``, ``1.25M``, with the decimals the
    tick spacing needs."""
    a = abs(value)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div and a >= 10_000:
            decimals = max(0, -math.floor(math.log10(spacing / div) + 1e-9)) if spacing else 0
            return f"{value / div:,.{min(decimals, 3)}f}{suffix}"
    # below ten thousand: whole numbers, unless the ticks are closer than 1 (an empty plot)
    decimals = max(0, -math.floor(math.log10(spacing) + 1e-9)) if 0 < spacing < 1 else 0
    return f"{value:,.{min(decimals, 3)}f}"


class CountAxis(pg.AxisItem):
    """An axis of steps or characters: separators, then k/M/G from ten thousand up."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph's name)
        return [count_label(v * scale, spacing * scale) for v in values]


def _multiples(step: float, lo: float, hi: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float, target: int = 8) -> tuple[list[float], list[float]]:
    """Major and minor tick values (in loss units) in [lo, hi], 0 < lo < hi, for a log axis.

    Within a factor of ten (a loss curve, nearly always) the ticks are the multiples of a
    1-2-2.5-5 step: 1.2 to 4.2 gets 1.5, 2, 2.5, 3, 3.5, 4. Over a wider range they are 1, 2, 5
    times the powers of ten, with the other digits as minor ticks."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return [], []
    if hi / lo <= 10:
        step = nice_step(hi - lo, target)
        major = _multiples(step, lo, hi)
        return major, [v for v in _multiples(step / 2, lo, hi) if v not in major]
    major, minor = [], []
    for d in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in range(1, 10):
            v = round(m * 10.0**d, 12)
            if lo <= v <= hi:
                (major if m in (1, 2, 5) else minor).append(v)
    return major, minor


class LossAxis(pg.AxisItem):
    """The loss axis: as pyqtgraph draws it on a linear scale; round loss values on a log one."""

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 (pyqtgraph's name)
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        lo, hi = 10 ** min(minVal, maxVal), 10 ** max(minVal, maxVal)
        major, minor = log_ticks(lo, hi, target=max(3, int(size / 40)))
        if len(major) < 2:
            return super().tickValues(minVal, maxVal, size)
        return [
            (1.0, [math.log10(v) for v in major]),
            (0.5, [math.log10(v) for v in minor]),
        ]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [f"{10**v:.3g}" for v in values]
