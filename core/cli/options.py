"""Command-line options generated from the config fields (``charlstm_core.config``): one per
setting.

Each field of ``ModelConfig``/``TrainConfig`` whose ``Setting`` has a flag becomes an option with
the field's name as ``dest``, its type and choices, and a help text made of the field's help, range
and default. Every option defaults to None, meaning "not given": a resumed run then keeps the
checkpoint's value, and a new one the field's default.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ..config import ModelConfig, Setting, TrainConfig, settings

CONFIGS = (ModelConfig, TrainConfig)


def flag(name: str, s: Setting) -> str:
    """The option of field ``name`` (``--hidden`` for hidden_size, ``--seq-len`` for seq_len)."""
    return s.flag or "--" + name.replace("_", "-")


def options(cls: type) -> dict[str, tuple[str, Setting, Any]]:
    """The fields of ``cls`` that have an option: name -> (flag, setting, default)."""
    return {
        name: (flag(name, s), s, default)
        for name, (s, default) in settings(cls).items()
        if s.flag is not None
    }


def range_text(s: Setting) -> str:
    """``8..2,048``, ``0..0.9`` or ``heal, stop``: what values a setting takes."""
    if s.kind is str:
        return ", ".join(s.choices)
    if s.kind is int:
        return f"{int(s.lo):,}..{int(s.hi):,}"  # type: ignore[arg-type]
    return f"{s.lo:g}..{s.hi:g}"


def option_help(s: Setting, default: Any) -> str:
    """The option's help: the field's help, its range (numbers) and ``default``."""
    values = "" if s.kind is str else f" Range {range_text(s)}."
    return f"{s.help}{values} (default: {default})"


def add_config_options(
    group: argparse._ActionsContainer, cls: type, defaults: Mapping[str, Any] | None = None
) -> None:
    """Add an option for each setting of ``cls`` to ``group``; ``defaults`` overrides the default
    a help text names (pass the same mapping to ``configs_from_args``)."""
    for name, (opt, s, default) in options(cls).items():
        group.add_argument(
            opt,
            dest=name,
            type=s.kind,
            choices=s.choices or None,
            default=None,  # None = not given: a resumed run then keeps the checkpoint's value
            metavar=None if s.choices else ("N" if s.kind is int else "X"),
            help=option_help(s, (defaults or {}).get(name, default)),
        )


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings of ``cls`` given on the command line, by field name."""
    return {n: getattr(args, n) for n in options(cls) if getattr(args, n, None) is not None}


def given_flags(args: argparse.Namespace, cls: type) -> list[str]:
    """The options of ``cls`` given on the command line (``["--hidden", "--layers"]``)."""
    return [options(cls)[n][0] for n in given(args, cls)]


def grid_aliases() -> dict[str, str]:
    """The options' names as sweep grid keys: ``hidden`` for hidden_size, and so on."""
    return {opt.lstrip("-"): name for cls in CONFIGS for name, (opt, _, _) in options(cls).items()}


def configs_from_args(
    args: argparse.Namespace,
    defaults: Mapping[str, Any] | None = None,
    **train: Any,
) -> tuple[ModelConfig, TrainConfig]:
    """The validated configs of the given options (``vocab_size`` 1 until a text sets it).

    ``defaults`` replaces field defaults for options not given; ``train`` sets fields without an
    option (how long to train: steps, epochs or minutes). The training settings are checked first.
    """
    d = dict(defaults or {})
    tc = TrainConfig(**{**_pick(d, TrainConfig), **given(args, TrainConfig), **train}).validate()
    mc = ModelConfig(vocab_size=1, **{**_pick(d, ModelConfig), **given(args, ModelConfig)})
    return mc.validate(), tc


def _pick(d: Mapping[str, Any], cls: type) -> dict[str, Any]:
    names = settings(cls)
    return {k: v for k, v in d.items() if k in names}
