"""Render the PNG icon sizes from ``charlstm-studio.svg`` with Qt's SVG renderer.

Run after editing the SVG, then commit the PNGs: ``python packaging/render_icons.py``.
Works without a display (it selects Qt's offscreen platform when none is set).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "resources"  # the SVG, and icons/ it writes
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)  # keep in step with resources.ICON_SIZES


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # alive while rendering
    renderer = QSvgRenderer(str(HERE / "charlstm-studio.svg"))
    if not renderer.isValid():
        print("charlstm-studio.svg is not a valid SVG", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = HERE / "icons" / f"charlstm-studio-{size}.png"
        if not image.save(str(out)):
            print(f"could not write {out}", file=sys.stderr)
            return 1
        print(out.relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
