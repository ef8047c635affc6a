"""Guard for the PySide6 pin: 6.12.x loses a reference to ``True`` on every ``Signal.emit()``.

After ~2,000 emits the interpreter aborts ("Fatal Python error: bool_dealloc"). If this test fails,
the installed PySide6 has the leak: keep ``PySide6-Essentials<6.12`` in pyproject.toml.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal, Slot


class Emitter(QObject):
    flag = Signal(bool)
    pair = Signal(int, bool)


class Receiver(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    @Slot(bool)
    def on_flag(self, value: bool) -> None:
        self.n += 1

    @Slot(int, bool)
    def on_pair(self, i: int, value: bool) -> None:
        self.n += 1


def test_emitting_bools_does_not_leak_references(qapp):
    emitter, receiver = Emitter(), Receiver()
    emitter.flag.connect(receiver.on_flag)
    emitter.pair.connect(receiver.on_pair)
    emitter.flag.emit(True)  # warm-up: caches and interned objects settle
    emitter.pair.emit(0, True)
    before = sys.getrefcount(True)
    # True may hold only a few dozen references: check after every emit, so a leaking build
    # fails here long before the count reaches zero (which aborts the whole pytest run).
    for i in range(2500):
        emitter.flag.emit(True)
        emitter.pair.emit(i, True)
        drift = sys.getrefcount(True) - before
        assert abs(drift) < 10, f"True's refcount moved by {drift} after {2 * i + 2} emits"
    assert receiver.n == 5_002
