"""Plot axes that read well: counts with k/M and separators, a log loss axis with enough labels,
and a live view whose range moves in steps.

pyqtgraph prints large tick values in full ("200000") and, on a log axis, labels only powers of
ten and a few minor ticks — four labels for a loss falling from 4.2 to 1.2. ``CountAxis`` writes
``200k``, ``1.5M``, ``2,500``; ``LossAxis`` in log mode puts ticks at round loss values (1.5, 2,
2.5, 3 …, chosen by the visible range and the axis's height) and labels them with the loss.

pyqtgraph's auto-range fits the view to the data after every new point of a live curve: each
refresh then re-lays out both axes, the grid and the reference lines' labels, which was most of
the GUI thread's time while training (``benchmarks/bench_app_vs_cli.py``). ``SteppedViewBox``
keeps the view while the data fit it and grows it with room to spare when they leave it
(``stepped_range``), so a live run moves its axes a few times per doubling of its length.
"""

from __future__ import annotations

import math

import pyqtgraph as pg

NICE = (1.0, 2.0, 2.5, 5.0)
GROW_ROOM = 0.25  # a view the data left grows by this fraction of the data's span on that side
SHRINK_BELOW = 0.5  # ...and shrinks to fit once the data span less than this fraction of it


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


def stepped_range(
    view: tuple[float, float],
    wanted: tuple[float, float],
    padding: float = 0.0,
    room: float = GROW_ROOM,
    shrink: float = SHRINK_BELOW,
) -> tuple[float, float]:
    """The range an auto-ranged axis of a live plot shows: ``view`` (the one it shows now) while
    the data lie inside it and ``wanted`` (their range, with ``padding`` times their span added
    on each side, as pyqtgraph pads it) spans at least ``shrink`` of it; when the data grew out
    of it, the sides they left move to ``room`` times the data's span beyond them, and the other
    sides stay; ``wanted`` itself when the data shrank, or lie mostly outside ``view`` (a first
    point, another run: a new picture, not a growing one).

    The data, not the padded range, decide: the padding grows with the data's span, so a padded
    edge would creep out of the view on every frame of a growing curve.
    """
    lo, hi = view
    wlo, whi = wanted
    span = whi - wlo
    if not (span > 0 and math.isfinite(span)):
        return wanted
    data = span / (1 + 2 * padding)
    dlo, dhi = wlo + padding * data, whi - padding * data
    if min(hi, dhi) - max(lo, dlo) < 0.5 * data:
        return wanted
    if lo <= dlo and dhi <= hi:
        return view if span >= shrink * (hi - lo) else wanted
    return (dlo - room * data if dlo < lo else lo, dhi + room * data if dhi > hi else hi)


class SteppedViewBox(pg.ViewBox):
    """A ViewBox whose auto-range moves in steps (``stepped_range``) while ``stepping`` is on;
    off, it fits the data exactly as pyqtgraph does. Only the auto-range steps: a range the
    user or the program sets is taken as given."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stepping = False
        self._auto = False  # inside updateAutoRange

    def set_stepping(self, on: bool) -> None:
        """Step (a live run) or fit exactly (the view fits the data again at once)."""
        if on != self.stepping:
            self.stepping = on
            if not on:
                self.updateAutoRange()

    def updateAutoRange(self) -> None:  # noqa: N802 (pyqtgraph's name)
        self._auto = True
        try:
            super().updateAutoRange()
        finally:
            self._auto = False

    def setRange(self, rect=None, xRange=None, yRange=None, **kwargs) -> None:  # noqa: N802, N803
        if self._auto and self.stepping and rect is None:
            target = self.state["targetRange"]
            if xRange is not None:
                xRange = stepped_range(  # noqa: N806
                    tuple(target[0]), tuple(xRange), self.suggestPadding(0)
                )
                if list(xRange) == list(target[0]):
                    xRange = None  # noqa: N806
            if yRange is not None:
                yRange = stepped_range(  # noqa: N806
                    tuple(target[1]), tuple(yRange), self.suggestPadding(1)
                )
                if list(yRange) == list(target[1]):
                    yRange = None  # noqa: N806
            if xRange is None and yRange is None:
                return
        super().setRange(rect, xRange, yRange, **kwargs)
