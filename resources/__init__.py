"""CharLSTM Studio's shipped files (icon, desktop entry, user guide), reached through one helper.

Everything goes through ``importlib.resources``, so the same calls work from a checkout, an editable
install, an installed wheel and the PyInstaller build. No Qt here: callers turn paths into icons.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

APP_ID = "charlstm-studio"  # the desktop file's and the icon's base name (freedesktop "app id")
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)  # the PNG renderings under icons/, in px
DESKTOP_FILE = f"{APP_ID}.desktop"
ICON_SVG = f"{APP_ID}.svg"


def resource_path(name: str) -> Traversable:
    """The shipped file ``name`` (a '/'-separated path inside this folder).

    Raises ``FileNotFoundError`` naming the file when it is not shipped, e.g. when the package data
    was left out of a wheel or a frozen build.
    """
    path = resources.files(__package__ or __name__)
    for part in name.split("/"):
        path = path.joinpath(part)
    if not path.is_file():
        raise FileNotFoundError(f"CharLSTM Studio resource {name!r} is missing from {path}")
    return path


def icon_path(size: int | None = None) -> Traversable:
    """The application icon: the SVG when ``size`` is None, else the ``size`` px PNG."""
    if size is None:
        return resource_path(ICON_SVG)
    if size not in ICON_SIZES:
        raise ValueError(f"no {size} px icon; the sizes are {', '.join(map(str, ICON_SIZES))}")
    return resource_path(f"icons/{APP_ID}-{size}.png")


def desktop_entry_text() -> str:
    """The freedesktop ``.desktop`` entry as shipped (its ``Exec`` is the plain launcher name)."""
    return resource_path(DESKTOP_FILE).read_text(encoding="utf-8")
