"""A line above the loss plot saying what it shows when its curves and its reference lines
belong to different texts (``controller.plot_caption``); hidden otherwise."""

from __future__ import annotations

import os
from typing import Any

from charlstm_core.files.text import display_path
from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QLabel

from ..controller.plot_caption import plot_caption
from ..widgets.plain import plain


class PlotNote(QObject):
    """Keeps ``label`` (placed above ``plot``) in step with the controller ``ctl``."""

    def __init__(self, ctl: Any, plot: Any) -> None:
        super().__init__(plot)
        self.ctl = ctl
        self.label = plain(QLabel())  # names files: shown as the characters they are
        self.label.setObjectName("plot_note")
        self.label.setWordWrap(True)
        self.label.setStyleSheet(
            "QLabel { background: #fff4d6; border: 1px solid #e0c070; padding: 3px 6px; }"
        )
        self.label.hide()
        plot.layout().insertWidget(0, self.label)
        for signal in (ctl.corpus_changed, ctl.model_changed, ctl.state_changed):
            signal.connect(self.update)
        ctl.history_reset.connect(self.update)

    @Slot()
    def update(self, *_: Any) -> None:
        c = self.ctl
        name = display_path(os.path.basename(c.model_path)) if c.model_path else c.model_source
        text = plot_caption(c.model, name, c.corpus, c.training)
        self.label.setText(text)
        self.label.setVisible(bool(text))
