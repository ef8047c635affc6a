"""Spin boxes and labels made from a config field's ``Setting`` (``charlstm_core.config``).

The range, the tooltip, the unit and the label are the field's; ``Widget`` says only how a
setting is shown (the arrows' step, the decimals, the text of a special lowest value, the unit as
a suffix, the label's Alt+letter). The settings form and the Generate tab build theirs here, so
that a field's facts reach both the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from charlstm_core.config import Setting

from .spinboxes import BigSpinBox, DoubleSpinBox, SpinBox


@dataclass(frozen=True)
class Widget:
    """How a form shows a setting; everything else about it comes from its config field."""

    step: float = 1  # of the arrows (numbers)
    decimals: int = -1  # -1: whole numbers
    special: str = ""  # shown instead of the lowest value ("never")
    show_unit: bool = False  # the field's unit as a suffix ("100 steps")
    shortcut: str = ""  # the label's Alt+letter: its first letter unless given


def label_text(s: Setting, w: Widget) -> str:
    """The field's label with its Alt+letter marked and a colon (``&Hidden size:``)."""
    i = s.label.lower().find(w.shortcut.lower()) if w.shortcut else 0
    return f"{s.label[:i]}&{s.label[i:]}:"


def spin_box(s: Setting, w: Widget) -> SpinBox | DoubleSpinBox | BigSpinBox:
    """A spin box over the field's range, its help as the tooltip; it reports a value when an
    edit is finished, not at every key."""
    spin: SpinBox | DoubleSpinBox | BigSpinBox
    if s.kind is float:
        spin = DoubleSpinBox()
        spin.setDecimals(w.decimals)
        spin.setRange(float(s.lo), float(s.hi))  # type: ignore[arg-type]
        spin.setSingleStep(w.step)
    else:
        spin = SpinBox() if s.hi < 2**31 else BigSpinBox()  # type: ignore[operator]
        spin.setRange(int(s.lo), int(s.hi))  # type: ignore[arg-type]
        spin.setSingleStep(int(w.step))
        spin.setGroupSeparatorShown(True)
    if w.show_unit:
        spin.setSuffix(f" {s.unit}")
    if w.special:
        spin.setSpecialValueText(w.special)
    spin.setToolTip(s.help)
    spin.setAccelerated(True)
    spin.setKeyboardTracking(False)
    return spin
