"""Desktop integration without Qt: the shipped entry validates, install and uninstall are exact.

Installs go to a temporary ``XDG_DATA_HOME``; ``desktop-file-validate`` checks are skipped where
desktop-file-utils is not installed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from charlstm_gui import APP_NAME, DESKTOP_FILE_NAME, desktop, resources


def _validate(path: Path) -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (Debian: desktop-file-utils)")
    out = subprocess.run([tool, str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def _entry(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_shipped_desktop_entry_validates(tmp_path):
    copy = tmp_path / resources.DESKTOP_FILE
    copy.write_text(resources.desktop_entry_text(), encoding="utf-8")
    _validate(copy)


def test_entry_matches_what_the_app_sets():
    entry = _entry(resources.desktop_entry_text())
    assert entry["Name"] == APP_NAME
    assert entry["StartupWMClass"] == APP_NAME  # X11 WM_CLASS class = QApplication name
    assert entry["Icon"] == resources.APP_ID == DESKTOP_FILE_NAME  # setDesktopFileName
    assert entry["Exec"] == f"{desktop.LAUNCHER} %f"
    assert entry["Terminal"] == "false" and entry["Type"] == "Application"


def test_resource_helper_finds_every_file():
    assert resources.icon_path().read_text(encoding="utf-8").lstrip().startswith("<?xml")
    for size in resources.ICON_SIZES:
        head = resources.icon_path(size).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", head[16:24]) == (size, size)  # IHDR width, height
    with pytest.raises(ValueError, match="no 20 px icon"):
        resources.icon_path(20)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        resources.resource_path("nope.txt")


def test_install_then_uninstall_leaves_nothing_behind(tmp_path):
    home = tmp_path / "share"
    written = desktop.install_desktop("/opt/CharLSTM/charlstm-gui", home, refresh=False)
    assert sorted(written) == _all_files(home)
    assert len(written) == 2 + len(resources.ICON_SIZES)  # entry, SVG, PNGs
    png16 = home / "icons/hicolor/16x16/apps/charlstm-studio.png"
    assert png16.read_bytes() == resources.icon_path(16).read_bytes()
    assert (home / "icons/hicolor/scalable/apps/charlstm-studio.svg").is_file()
    assert sorted(desktop.uninstall_desktop(home, refresh=False)) == sorted(written)
    assert list(home.iterdir()) == []  # the folders it made are gone too
    assert desktop.uninstall_desktop(home, refresh=False) == []


def test_uninstall_with_cache_refresh_keeps_no_trace(tmp_path):
    home = tmp_path / "share"
    desktop.install_desktop("/opt/CharLSTM/charlstm-gui", home)
    desktop.uninstall_desktop(home)
    for path in home.rglob("*"):
        assert "charlstm" not in path.name
        if path.is_file():  # e.g. update-desktop-database's mimeinfo.cache
            assert b"charlstm" not in path.read_bytes(), path


def test_uninstall_leaves_other_files_alone(tmp_path):
    home = tmp_path / "share"
    other = home / "icons/hicolor/16x16/apps/other.png"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    desktop.install_desktop("/opt/x/charlstm-gui", home, refresh=False)
    desktop.uninstall_desktop(home, refresh=False)
    assert _all_files(home) == [other]


def test_installed_entry_quotes_odd_paths_and_validates(tmp_path):
    odd = '/opt/my apps/100% "sure"/charlstm-gui'
    path = desktop.install_desktop(odd, tmp_path, refresh=False)[0]
    entry = _entry(path.read_text(encoding="utf-8"))
    assert entry["Exec"] == r'"/opt/my apps/100%% \\"sure\\"/charlstm-gui" %f'
    assert entry["TryExec"] == odd
    _validate(path)


def test_exec_points_at_an_existing_launcher(tmp_path):
    path = desktop.install_desktop(None, tmp_path, refresh=False)[0]
    exec_line = _entry(path.read_text(encoding="utf-8"))["Exec"]
    args = shlex.split(exec_line.replace("%%", "%"))
    assert args[-1] == "%f"
    program = Path(args[0])
    assert program.is_absolute() and program.is_file() and os.access(program, os.X_OK)
    if program.name != desktop.LAUNCHER:  # not pip-installed: the interpreter runs the package
        assert args[1:3] == ["-m", "charlstm_gui"] and Path(sys.executable).samefile(program)


def test_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert desktop.handle_desktop_flags(["charlstm-gui", "model.npz"]) is None
    assert desktop.handle_desktop_flags(["charlstm-gui", "--install-desktop"]) == 0
    assert (tmp_path / "share/applications/charlstm-studio.desktop").is_file()
    assert "Installed CharLSTM Studio" in capsys.readouterr().out
    assert desktop.handle_desktop_flags(["--uninstall-desktop"]) == 0
    assert "Removed" in capsys.readouterr().out
    both = ["--install-desktop", "--uninstall-desktop"]
    assert desktop.handle_desktop_flags(both) == 2


def test_unwritable_data_home_is_one_clear_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker / "share"))  # works as root too
    assert desktop.handle_desktop_flags(["--install-desktop"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("charlstm-gui: could not install the desktop entry:")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_relative_xdg_data_home_is_ignored(monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    assert desktop.data_home() == Path.home() / ".local" / "share"
