"""Autosave retention: the oldest beyond the setting are deleted, their size shown; 0 keeps all."""

from __future__ import annotations

import os
import time

from charlstm_gui.controller import autosaves

from .helpers import model_like


def _autosave(folder, name, age_s):
    path = model_like(folder / name)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_autosaves_beyond_the_setting_are_deleted_and_the_size_shown(qtbot, window, tmp_path):
    folder = tmp_path / "autosave"
    folder.mkdir()
    old = [_autosave(folder, f"t-2026010{i}-120000.npz", 1000 - i) for i in range(1, 6)]
    mine = _autosave(folder, "my-model.npz", 5000)  # saved by the user under another name
    window.form.set_values({"autosave_dir": str(folder), "autosave_keep": 2})
    assert "5 autosaves" in window.form.autosave_size.text()
    window.ctl.files.model_path = str(old[0])  # the open model is never deleted
    window.view.on_autosaved(str(old[-1]))  # the newest, the current run's
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([old[0].name, old[-1].name, mine.name])
    assert "2 autosaves" in window.form.autosave_size.text()
    window.ctl.files.model_path = None


def test_keep_zero_keeps_every_autosave(tmp_path):
    for i in range(4):
        _autosave(tmp_path, f"t-2026010{i}-120000.npz", 100 - i)
    assert autosaves.prune(tmp_path, 0) == []
    assert len(autosaves.autosaves(tmp_path)) == 4
    assert len(autosaves.prune(tmp_path, 1)) == 3
