"""The unsaved-training question's answer (charlstm_gui.leaving.unsaved_choice), with a fake
window: what the caller may do after each answer, and where it saves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from charlstm_gui.leaving import unsaved_choice


def fake_window(answer: str, model_path: str | None, picked: str | None) -> SimpleNamespace:
    asked: list[str] = []

    def ask_save_path() -> str | None:
        asked.append("path")
        return picked

    w = SimpleNamespace(
        ask_unsaved=lambda context: answer,
        ask_save_path=ask_save_path,
        ctl=SimpleNamespace(model_path=model_path),
    )
    w.asked = asked
    return w


@pytest.mark.parametrize(
    "answer, model_path, picked, expected, asked_path",
    [
        ("cancel", "m.npz", "x.npz", (False, None), False),
        ("discard", "m.npz", "x.npz", (True, None), False),
        ("save", "m.npz", "x.npz", (True, "m.npz"), False),  # the model's own file, not asked
        ("save", None, "x.npz", (True, "x.npz"), True),
        ("save", None, "", (False, None), True),  # the path dialog cancelled: stop
        ("save", None, None, (False, None), True),
    ],
)
def test_unsaved_choice(answer, model_path, picked, expected, asked_path):
    w = fake_window(answer, model_path, picked)
    assert unsaved_choice(w, "closing") == expected
    assert (w.asked == ["path"]) is asked_path
