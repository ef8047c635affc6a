"""A run's name: automatic until someone chooses one, then kept.

A new run is named after its text and size (``default_name``: "words 1x16"), a sweep's points
after what differs between them ("lr=0.005 hidden=256", given by the sweep). When the model of a
run is saved to a file of its own, the run takes that file's name (``model_file_name``: "A" for
``A.npz``), so that a run can be told from the others of its text and size, unless its name was
chosen by someone (``charlstm train --name``, a rename) or says what differs in a sweep: only an
automatic name is replaced (``is_automatic``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def default_name(text_name: str, model_settings: Mapping[str, Any]) -> str:
    """``"words 1x16"``: the text's stem, layers x hidden size."""
    stem = Path(str(text_name or "text")).stem or "text"
    layers, hidden = model_settings.get("num_layers", "?"), model_settings.get("hidden_size", "?")
    return f"{stem} {layers}x{hidden}"


def model_file_name(path: str | os.PathLike) -> str:
    """``"A"`` for ``/models/A.npz``: the name a run takes when its model is saved there."""
    name = os.path.basename(os.fspath(path))
    return name[:-4] if name.lower().endswith(".npz") and len(name) > 4 else name


def is_automatic(
    name: str, text_name: str, model_settings: Mapping[str, Any], model_path: str | None
) -> bool:
    """Whether ``name`` is one the store gave (the default, or an earlier model file's name),
    not one a person or a sweep chose."""
    if name == default_name(text_name, model_settings):
        return True
    return bool(model_path) and name == model_file_name(model_path or "")


def setting_name(field: str) -> str:
    """The short name a person types for a setting: its command-line option without the
    dashes ("hidden" for hidden_size, "seq-len" for seq_len, "lr"), else the field's name. A
    sweep's runs are named with these, by what differs between them ("lr=0.005 hidden=256")."""
    from ..config import ModelConfig, TrainConfig, settings

    for cls in (ModelConfig, TrainConfig):
        found = settings(cls).get(field)
        if found is not None:
            flag = found[0].flag
            return field.replace("_", "-") if flag in ("", None) else flag.lstrip("-")
    return field
