"""The settings form's spin boxes and drop-downs: the mouse wheel only changes a focused one,
and ``BigSpinBox`` holds whole numbers past QSpinBox's 32 bits."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QDoubleSpinBox, QSpinBox


class _WheelOnlyWhenFocused:
    """A field that ignores the mouse wheel until it is clicked or tabbed into, so scrolling
    the settings panel never changes a value the pointer happens to pass over."""

    def _init_focus(self) -> None:
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # type: ignore[attr-defined]

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()  # the scroll area gets it


class SpinBox(_WheelOnlyWhenFocused, QSpinBox):
    def __init__(self) -> None:
        super().__init__()
        self._init_focus()


class DoubleSpinBox(_WheelOnlyWhenFocused, QDoubleSpinBox):
    def __init__(self) -> None:
        super().__init__()
        self._init_focus()


class BigSpinBox(_WheelOnlyWhenFocused, QAbstractSpinBox):
    """A whole-number spin box for ranges past QSpinBox's 32 bits (the seed goes to 2**63 - 1).

    Shown with group separators, like ``SpinBox``; ``valueChanged`` carries a Python int.
    """

    valueChanged = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._init_focus()
        self._lo, self._hi, self._step, self._value = 0, 99, 1, 0
        self.editingFinished.connect(self.interpretText)
        self._show()

    def minimum(self) -> int:
        return self._lo

    def maximum(self) -> int:
        return self._hi

    def setRange(self, lo: int, hi: int) -> None:  # noqa: N802 (Qt's name)
        self._lo, self._hi = int(lo), int(hi)
        self.setValue(self._value)

    def setSingleStep(self, step: int) -> None:  # noqa: N802 (Qt's name)
        self._step = int(step)

    def value(self) -> int:
        return self._value

    def setValue(self, value: int) -> None:  # noqa: N802 (Qt's name)
        value = min(max(int(value), self._lo), self._hi)
        changed = value != self._value
        self._value = value
        self._show()
        if changed:
            self.valueChanged.emit(value)

    def textFromValue(self, value: int) -> str:  # noqa: N802 (Qt's name)
        return f"{value:,}".replace(",", self.locale().groupSeparator())

    def valueFromText(self, text: str) -> int | None:  # noqa: N802 (Qt's name)
        digits = text.replace(self.locale().groupSeparator(), "").replace(",", "").strip()
        return int(digits) if digits.isdigit() else None

    def validate(self, text: str, pos: int) -> QValidator.State:
        if not text.strip():
            return QValidator.State.Intermediate
        value = self.valueFromText(text)
        if value is None:
            return QValidator.State.Invalid
        ok = self._lo <= value <= self._hi
        return QValidator.State.Acceptable if ok else QValidator.State.Intermediate

    def interpretText(self) -> None:  # noqa: N802 (Qt's name)
        value = self.valueFromText(self.lineEdit().text())
        self.setValue(self._value if value is None else value)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        self.interpretText()
        self.setValue(self._value + steps * self._step)

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:  # noqa: N802 (Qt's name)
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self._value > self._lo:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        if self._value < self._hi:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        return flags

    def _show(self) -> None:
        self.lineEdit().setText(self.textFromValue(self._value))


class Combo(_WheelOnlyWhenFocused, QComboBox):
    def __init__(self) -> None:
        super().__init__()
        self._init_focus()
