"""SLOW (about a minute): build the PyInstaller one-folder app and check the executable starts.

The build runs ``packaging/pyinstaller/build.py`` into ``tmp_path``; the built ``charlstm-gui`` then
runs ``--self-test MODEL.npz`` offscreen: it opens the window, loads the model through the normal
open path, prints "self-test ok: ..." and exits 0. Skipped without PyInstaller; set
``CHARLSTM_SKIP_STANDALONE=1`` to skip it on purpose.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine.model import init_params
from charlstm_core.files.modelfile import ModelFile, save_model
from charlstm_core.files.text import Vocab

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "packaging" / "pyinstaller" / "build.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("PyInstaller") is None,
        reason="PyInstaller is not installed (pip install pyinstaller)",
    ),
    pytest.mark.skipif(
        os.environ.get("CHARLSTM_SKIP_STANDALONE") == "1", reason="CHARLSTM_SKIP_STANDALONE=1"
    ),
]


def _tiny_model(path: Path) -> None:
    vocab = Vocab.from_text("hello, standalone world\n")
    cfg = ModelConfig(vocab_size=vocab.size, hidden_size=8, num_layers=1)
    save_model(path, ModelFile(cfg, init_params(cfg, np.random.default_rng(0)), vocab))


def _quiet_env(tmp_path: Path) -> dict[str, str]:
    """Offscreen Qt, a fresh 0700 runtime dir and a throw-away home (settings, desktop data)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        XDG_RUNTIME_DIR=str(runtime),
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        LANG="C.UTF-8",
    )
    return env


def test_built_executable_starts_and_opens_a_model(tmp_path):
    if "--self-test" not in (ROOT / "charlstm_gui" / "app.py").read_text(encoding="utf-8"):
        pytest.skip("charlstm_gui.app.main has no --self-test hook yet")
    dist, work = tmp_path / "dist", tmp_path / "work"
    built = subprocess.run(
        [sys.executable, str(BUILD), "--dist", str(dist), "--work", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    exe_name = "charlstm-gui.exe" if sys.platform == "win32" else "charlstm-gui"
    exe = dist / "charlstm-studio" / exe_name
    assert exe.is_file()
    assert (exe.parent / "_internal/charlstm_gui/resources/charlstm-studio.desktop").is_file()
    assert (exe.parent / "_internal/charlstm_gui/resources/user-guide.md").is_file()  # F1's guide

    model = tmp_path / "tiny.npz"
    _tiny_model(model)
    env = _quiet_env(tmp_path)
    ran = subprocess.run(
        [str(exe), "--self-test", str(model)], env=env, capture_output=True, text=True, timeout=90
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "self-test ok: tiny.npz" in ran.stdout

    missing = subprocess.run(
        [str(exe), "--self-test", str(tmp_path / "missing.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert missing.returncode != 0
    assert "missing.npz" in missing.stderr
