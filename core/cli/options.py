"""Command-line options generated from the config fields (``charlstm_core.config``): one per
setting.

Each field of ``ModelConfig``/``TrainConfig`` (``train``, ``sweep``) and of ``GenerationConfig``
(``sample``) whose ``Setting`` has a flag becomes an option with the field's name as ``dest``, its
type and choices, and a help text made of the field's help, range and default. Every option
defaults to None, meaning "not given": a resumed run then keeps the checkpoint's value, and
anything else the field's default.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Mapping
from typing import Any

from ..config import GenerationConfig, ModelConfig, Setting, TrainConfig, settings
from ..errors import ConfigError

CONFIGS = (ModelConfig, TrainConfig)  # a training run's (train, sweep; the sweep grid's keys)


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
    """``8..2,048``, ``0..0.9``, ``heal, stop`` or ``any text``: what values a setting takes."""
    if s.kind is str:
        return ", ".join(s.choices) if s.choices else "any text"
    if s.kind is int:
        return f"{int(s.lo):,}..{int(s.hi):,}"  # type: ignore[arg-type]
    return f"{s.lo:g}..{s.hi:g}"


def default_text(s: Setting, default: Any) -> str:
    """A default as the help shows it: ``512``, ``cosine``, ``random`` (None: ``s.none``) or
    ``none`` (empty text)."""
    if default is None:
        return s.none or "none"
    return "none" if default == "" else str(default)


def option_help(s: Setting, default: Any) -> str:
    """The option's help: the field's help, its range (numbers) and ``default``."""
    values = "" if s.kind is str else f" Range {range_text(s)}."
    return f"{s.help}{values} (default: {default_text(s, default)})"


def metavar(s: Setting) -> str | None:
    """``N`` (whole numbers), ``X`` (numbers), ``TEXT``; None: argparse lists the choices."""
    if s.kind is str:
        return None if s.choices else "TEXT"
    return "N" if s.kind is int else "X"


def add_config_options(
    group: argparse._ActionsContainer,
    cls: type,
    defaults: Mapping[str, Any] | None = None,
    only: Collection[str] | None = None,
) -> None:
    """Add an option for each setting of ``cls`` (or of those named in ``only``) to ``group``;
    ``defaults`` overrides the default a help text names (pass the same mapping to
    ``configs_from_args``)."""
    for name, (opt, s, default) in options(cls).items():
        if only is not None and name not in only:
            continue
        group.add_argument(
            opt,
            dest=name,
            type=s.kind,
            choices=s.choices or None,
            default=None,  # None = not given: a resumed run then keeps the checkpoint's value
            metavar=metavar(s),
            help=option_help(s, (defaults or {}).get(name, default)),
        )


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings of ``cls`` given on the command line, by field name, each checked against its
    field: ``ConfigError`` names the option of a bad one ("--seed: The seed must be ...")."""
    out = {}
    for name, (opt, s, _) in options(cls).items():
        value = getattr(args, name, None)
        if value is not None:
            try:
                s.check(value)
            except ConfigError as e:
                raise ConfigError(f"{opt}: {e}") from None
            out[name] = value
    return out


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


def generation_from_args(args: argparse.Namespace) -> GenerationConfig:
    """The validated ``GenerationConfig`` of the given options (``sample``'s), the field defaults
    for the others."""
    return GenerationConfig(**given(args, GenerationConfig)).validate()


def _pick(d: Mapping[str, Any], cls: type) -> dict[str, Any]:
    names = settings(cls)
    return {k: v for k, v in d.items() if k in names}
