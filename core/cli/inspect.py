"""``charlstm inspect`` and ``cells``: what a model thinks of a text.

``inspect`` prints bits per character and the most surprising stretches, and writes a coloured
page with ``--html`` (``charlstm_core.insight.html``); ``cells`` ranks the units that track simple
detectors (quotes, brackets, line position) by Pearson's r (``charlstm_core.insight.inspect``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

from ..errors import CharLSTMError, ConfigError
from ..files import writer
from ..files.modelfile import ModelFile, load_model
from ..insight.html import render as _render_html
from ..insight.html import visible as _visible
from ..insight.inspect import DETECTORS, KINDS, analyse, detectors, max_passage, rank_units
from ..insight.inspect import surprising_spans as _surprising_spans
from ..insight.units import parse_unit, unit_label
from .console import UsageError, note, write
from .model import read_for
from .remember import model_path, own_validation_text


def _passage(
    args: argparse.Namespace, model: ModelFile, path: str, limit: int | None = None
) -> tuple[str, str | None, str]:
    """(the first --chars characters (at most ``limit``) of TEXT, or of the validation part of
    the model's own text when TEXT is left out; the file read, None for the built-in text; its
    name), with a note when cut."""
    if args.chars < 2:
        raise ConfigError(f"--chars must be at least 2, not {args.chars}.")
    if args.text:
        corpus = read_for(model, args.text, args.encoding)
        full, source, name = None, args.text, corpus.name
        total = corpus.n_chars
    else:
        full, source, name = own_validation_text(model, path, args.encoding)
        name = f"the validation part of {name}"
        total = len(full)
    n = min(args.chars, total) if limit is None else min(args.chars, total, limit)
    if n < total:
        note(f"reading the first {n:,} of {total:,} characters of {name}.")
    return (corpus.preview(n) if full is None else full[:n]), source, name


def _parse_unit(spec: str, model: ModelFile) -> tuple[int, int]:
    """LAYER:UNIT (layers from 1, units from 0) as a 0-based (layer, unit) of the model."""
    cfg = model.config
    try:
        return parse_unit(spec, cfg.num_layers, cfg.hidden_size)
    except ConfigError as e:
        raise UsageError(f"--unit {spec}: {e}") from None


def inspect(args: argparse.Namespace) -> int:
    path = model_path(args)
    if args.html and args.text:  # before anything is read: the one guarded writer's rule
        _check_page(args.html, path, args.text)
    model = load_model(path)
    unit = _parse_unit(args.unit, model) if args.unit else None
    if args.spans < 0:
        raise ConfigError(f"--spans must be 0 or more, not {args.spans}.")
    limit = max_passage(model) if unit is not None else None
    text, source, name = _passage(args, model, path, limit)
    if args.html and not args.text:  # the model's own text: known only now
        _check_page(args.html, path, source)
    a = analyse(model, text, 5, activations=unit is not None)
    shown = source if args.text else name
    print(f"text:      {shown} ({len(text):,} characters, {len(text) - 1:,} predicted)")
    print(f"bits/char: {a.mean_bits:.4f}")
    print(f"nats/char: {a.mean_bits * math.log(2.0):.4f}")
    spans = _surprising_spans(a, args.spans)
    if spans:
        print("most surprising stretches (position, bits, text, what the model expected there):")
    for start, end, total in spans:
        worst = start + int(np.nanargmax(np.r_[0.0, a.bits][start:end]))
        expected = ", ".join(f"{_visible(ch)!r} {p:.0%}" for ch, p in a.top_chars(worst - 1)[:3])
        write(
            sys.stdout,
            f"  {start:>7,}  {total:6.1f}  {text[start:end]!r}: at {_visible(text[worst])!r} "
            f"expected {expected}\n",
        )
    if args.html:
        text_name = os.path.basename(source) if args.text else name
        title = f"{text_name} read by {os.path.basename(path)}"
        page = _render_html(a, title, unit, args.kind)
        writer.write_atomic(args.html, writer.Kind.PAGE, page, protect=_inputs(path, source))
        note(f"wrote {args.html}")
    return 0


def _inputs(model: str, text: str | None) -> dict[str, str | None]:
    """What a page written by ``inspect --html`` must never replace."""
    return {"one of the inputs (the model)": model, "one of the inputs (the text)": text}


def _check_page(html: str, model: str, text: str | None) -> None:
    """UsageError unless the one guarded writer's rule lets a page be written at ``html``."""
    try:
        writer.check_target(html, writer.Kind.PAGE, protect=_inputs(model, text))
    except CharLSTMError as e:
        raise UsageError(f"--html: {e}") from None


def cells(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, not {args.top}.")
    path = model_path(args)
    model = load_model(path)
    text, source, name = _passage(args, model, path, max_passage(model))
    a = analyse(model, text)
    ranking = rank_units(a, detectors(text), args.kind, args.top)
    shown = source if args.text else name
    print(f"text:  {shown} ({len(text):,} characters), units by |r| of {KINDS[args.kind]}")
    width = max(len(name) for name in DETECTORS)
    for name, scores in ranking.items():
        if not scores:
            row = "(constant in this text: nothing to correlate)"
        else:
            row = "  ".join(f"{unit_label(s.layer, s.unit)} {s.r:+.2f}" for s in scores)
        print(f"{name:<{width}}  {row}")
    return 0
