"""Shared helpers of the GUI tests: a small generated text, tiny fast settings, and opening a text
or training in the real window and waiting until it is done."""

from __future__ import annotations

from pathlib import Path

from charlstm_gui.controller.controller import State

TINY = dict(
    hidden_size=16,
    num_layers=1,
    dropout=0.0,
    seq_len=16,
    batch_size=4,
    lr=0.01,
    warmup_steps=0,
    duration_unit="steps",
    duration=30,
    eval_every=10,
    sample_every=10,
    sample_length=20,
    checkpoint_every=0,
    val_fraction=0.1,
)


def small_text(path: Path, extra: str = "") -> Path:
    words = "the quick brown fox jumps over the lazy dog while a cat sleeps in the sun".split()
    lines = [
        " ".join(words[(i * 7) % len(words) :] + words[: (i * 7) % len(words)]) for i in range(60)
    ]
    path.write_text("\n".join(lines) + extra + "\n", encoding="utf-8")
    return path


def load(qtbot, w, path: Path) -> None:
    """Open the text ``path`` in the window ``w`` and wait until it is loaded."""
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(path))


def train(qtbot, w, *, resume: bool = False, steps: int = 30) -> None:
    """Train a new model (or continue the current one) for ``steps`` and wait until it ends."""
    w.form.set_values({"duration": steps})
    (w.continue_training if resume else w.train_new)()
    assert w.ctl.state is State.STARTING, w.last_message
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)


def model_like(path: Path, size: int = 1000) -> Path:
    """A file the one guarded writer takes for a model (a zip listing the model's entries),
    of about ``size`` bytes, without training one: what a model file deleted by the app or
    pruned from the autosave folder must be (charlstm_core.files.writer.recognise)."""
    import numpy as np

    with open(path, "wb") as f:
        np.savez(f, format_version=np.int64(1), meta=np.zeros(max(1, size - 400), np.uint8))
    return path


def shown_tip(tip: str) -> str:
    """What a tooltip shows: rich text rendered as Qt does (``widgets.plain.tip`` escapes)."""
    from PySide6.QtGui import Qt, QTextDocument

    if not Qt.mightBeRichText(tip):
        return tip
    doc = QTextDocument()
    doc.setHtml(tip)
    return doc.toPlainText()
