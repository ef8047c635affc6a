"""Files shipped inside the package (icons), reached through ``importlib.resources`` only.

Every other module asks this helper for an icon or a path, so the app finds its files whether it
runs from a checkout, an installed wheel or a zip.
"""

from __future__ import annotations

from importlib import resources

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap


def resource_bytes(name: str) -> bytes:
    """The bytes of a resource file in this package; ``FileNotFoundError`` if it is missing."""
    return resources.files(__name__).joinpath(name).read_bytes()


def load_pixmap(name: str, size: int = 64) -> QPixmap:
    """A pixmap of an image resource, or a plain painted square when the file cannot be read."""
    pix = QPixmap()
    try:
        pix.loadFromData(resource_bytes(name))
    except (FileNotFoundError, OSError):
        pass
    if pix.isNull():
        pix = QPixmap(size, size)
        pix.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pix)
        painter.setBrush(QColor("#1f3b57"))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawRoundedRect(0, 0, size, size, size / 5, size / 5)
        painter.end()
    return pix


def app_icon() -> QIcon:
    """The application's icon (window title bar, task bar, About box)."""
    icon = QIcon()
    for size in (16, 32, 48, 64, 128, 256):
        icon.addPixmap(load_pixmap("icon.svg", size).scaled(size, size))
    return icon
