"""Linux desktop integration: install the menu entry and icon for this user, and the app's QIcon.

``charlstm-gui --install-desktop`` writes ``charlstm-studio.desktop`` and the icons under
``$XDG_DATA_HOME`` (default ``~/.local/share``), with ``Exec`` pointing at the launcher that is
running now; ``--uninstall-desktop`` removes exactly those files again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources as _ir
from pathlib import Path
from typing import TYPE_CHECKING

from charlstm_gui import resources

if TYPE_CHECKING:
    from PySide6.QtGui import QIcon

INSTALL_FLAG = "--install-desktop"
UNINSTALL_FLAG = "--uninstall-desktop"
LAUNCHER = "charlstm-gui"  # the [project.gui-scripts] name

# Characters that force an Exec argument into double quotes (Desktop Entry spec, "The Exec key").
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def data_home(explicit: Path | None = None) -> Path:
    """``$XDG_DATA_HOME`` when set to an absolute path (the spec ignores relative ones), else
    ``~/.local/share``; ``explicit`` wins over both."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("XDG_DATA_HOME", "")
    if env and os.path.isabs(env):
        return Path(env)
    return Path.home() / ".local" / "share"


def launcher_command(exec_path: str | None = None) -> list[str]:
    """The command a desktop launch runs: ``exec_path`` when given; the frozen executable in a
    PyInstaller build; the ``charlstm-gui`` script beside this interpreter (an unactivated venv)
    or on ``PATH``; else ``<python> -m charlstm_gui``."""
    if exec_path:
        return [str(Path(exec_path).expanduser().absolute())]
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).absolute())]
    beside = Path(sys.executable).with_name(LAUNCHER)
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    found = shutil.which(LAUNCHER)
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "charlstm_gui"]


def _escape_string(value: str) -> str:
    """The Desktop Entry escapes of a ``string`` value (applied after the Exec quoting)."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def _quote_exec_arg(arg: str) -> str:
    """One Exec argument, double-quoted when it holds a reserved character; '%' doubled."""
    arg = arg.replace("%", "%%")
    if any(c in _RESERVED for c in arg):
        arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return arg


def desktop_entry_for(command: Sequence[str]) -> str:
    """The shipped entry with ``Exec`` (keeping its ``%f``) and ``TryExec`` set to ``command``."""
    exec_value = _escape_string(" ".join(_quote_exec_arg(a) for a in command)) + " %f"
    lines = []
    for line in resources.desktop_entry_text().splitlines():
        if line.startswith("Exec="):
            line = "Exec=" + exec_value
        elif line.startswith("TryExec="):
            line = "TryExec=" + _escape_string(command[0])
        lines.append(line)
    return "\n".join(lines) + "\n"


def _targets(home: Path) -> dict[Path, bytes | None]:
    """Every file the install writes, mapped to its bytes (None: the desktop entry, made later)."""
    out: dict[Path, bytes | None] = {home / "applications" / resources.DESKTOP_FILE: None}
    hicolor = home / "icons" / "hicolor"
    for size in resources.ICON_SIZES:
        target = hicolor / f"{size}x{size}" / "apps" / f"{resources.APP_ID}.png"
        out[target] = resources.icon_path(size).read_bytes()
    out[hicolor / "scalable" / "apps" / resources.ICON_SVG] = resources.icon_path().read_bytes()
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a menu never sees half a file


def _refresh_caches(home: Path) -> None:
    """Tell the desktop about the change; missing tools or their failures are not errors."""
    apps = home / "applications"
    hicolor = home / "icons" / "hicolor"
    commands = []
    if apps.is_dir():
        commands.append(["update-desktop-database", "-q", str(apps)])  # the MimeType -> app map
    if (hicolor / "index.theme").is_file():  # only a themed dir keeps a cache that could go stale
        commands.append(["gtk-update-icon-cache", "-q", "-f", str(hicolor)])
    for cmd in commands:
        if shutil.which(cmd[0]) is None:
            continue
        try:
            subprocess.run(cmd, check=False, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass


def install_desktop(
    exec_path: str | None = None, data_home_dir: Path | None = None, refresh: bool = True
) -> list[Path]:
    """Install the desktop entry and icons for this user; return the paths written.

    ``exec_path`` overrides the launcher (see ``launcher_command``); ``data_home_dir`` overrides
    ``$XDG_DATA_HOME``; ``refresh=False`` skips ``update-desktop-database`` and
    ``gtk-update-icon-cache``. Raises ``OSError`` when a file cannot be written.
    """
    home = data_home(data_home_dir)
    entry = desktop_entry_for(launcher_command(exec_path)).encode("utf-8")
    written = []
    for path, data in _targets(home).items():
        _write(path, entry if data is None else data)
        written.append(path)
    if refresh:
        _refresh_caches(home)
    return written


def uninstall_desktop(data_home_dir: Path | None = None, refresh: bool = True) -> list[Path]:
    """Remove the files ``install_desktop`` writes (only those) and the folders they leave empty
    below the data home; return the paths removed. Raises ``OSError`` when one cannot be."""
    home = data_home(data_home_dir)
    removed = []
    for path in _targets(home):
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)
            _prune_empty_parents(path.parent, home)
    if refresh and removed:
        _refresh_caches(home)
    return removed


def _prune_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()  # fails (and stops) at the first folder that is not empty
        except OSError:
            return
        folder = folder.parent


def handle_desktop_flags(argv: Sequence[str]) -> int | None:
    """Handle ``--install-desktop`` / ``--uninstall-desktop`` in ``argv`` (program name included
    or not): print what was done and return the exit code; None when neither flag is there."""
    install, uninstall = INSTALL_FLAG in argv, UNINSTALL_FLAG in argv
    if not install and not uninstall:
        return None
    if install and uninstall:
        print(f"{LAUNCHER}: give {INSTALL_FLAG} or {UNINSTALL_FLAG}, not both", file=sys.stderr)
        return 2
    try:
        if install:
            paths = install_desktop()
            command = launcher_command()
        else:
            paths = uninstall_desktop()
    except OSError as exc:
        what = "install" if install else "remove"
        print(f"{LAUNCHER}: could not {what} the desktop entry: {exc}", file=sys.stderr)
        return 1
    if install:
        print(f"Installed CharLSTM Studio in the desktop menu ({len(paths)} files):")
        print(f"  {paths[0]}  (runs: {' '.join(command)})")
        print(f"  icons under {paths[1].parents[2]}")
    elif paths:
        print(f"Removed CharLSTM Studio from the desktop menu ({len(paths)} files, {data_home()}).")
    else:
        print(f"Nothing to remove: CharLSTM Studio is not installed under {data_home()}.")
    return 0


def app_icon() -> QIcon:
    """The application icon as a QIcon: the SVG for any size, the hand-checked PNGs where their
    size is asked for (Qt's SVG icon engine prefers an added pixmap of the exact size)."""
    from PySide6.QtGui import QIcon, QPixmap

    icon = QIcon()
    # The SVG goes first so that the icon gets Qt's SVG engine (the PNGs alone would get the pixmap
    # engine, which cannot draw the SVG at other sizes). The engine reads the file when it is added,
    # so a temporary copy (only made when the resources are not plain files, e.g. zipped) may go.
    with _ir.as_file(resources.icon_path()) as svg:
        icon.addFile(str(svg))
    for size in resources.ICON_SIZES:
        pixmap = QPixmap()
        if pixmap.loadFromData(resources.icon_path(size).read_bytes(), "PNG"):
            icon.addPixmap(pixmap)
    return icon
