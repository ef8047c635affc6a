"""The application icon loads in Qt (offscreen, set up by conftest): every PNG and the SVG.

Sizes between the shipped PNGs come from the SVG, so the QIcon is never blurry or empty.
"""

from __future__ import annotations

from PySide6.QtGui import QImage, QPixmap

from charlstm_gui import resources
from charlstm_gui.desktop import app_icon


def test_every_png_loads_as_a_pixmap(qapp):
    for size in resources.ICON_SIZES:
        pixmap = QPixmap()
        assert pixmap.loadFromData(resources.icon_path(size).read_bytes(), "PNG")
        assert (pixmap.width(), pixmap.height()) == (size, size)


def test_app_icon_is_exact_at_png_sizes_and_drawn_between(qapp):
    icon = app_icon()
    assert not icon.isNull()
    fmt = QImage.Format.Format_ARGB32
    png16 = QImage.fromData(resources.icon_path(16).read_bytes()).convertToFormat(fmt)
    assert icon.pixmap(16, 16).toImage().convertToFormat(fmt) == png16
    for size in (20, 100, 1024):  # not shipped as PNG: rendered from the SVG
        image = icon.pixmap(size, size).toImage()
        assert image.width() == size
        centre = image.pixelColor(size // 2, size // 2)
        assert centre.alpha() == 255  # the tile is opaque in the middle
