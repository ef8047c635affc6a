"""``charlstm sample``, ``eval`` and ``info``: use a model file and describe it.

``sample`` streams generated text to stdout (and, with ``--copies``, says on stderr how much of it
is copied verbatim from a training text); ``eval`` prints the mean loss over a text; ``info``
prints the architecture, size, vocabulary and training record.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys

import numpy as np

from ..engine.model import count_params
from ..errors import ConfigError, CorpusMismatchError, unrepresentable
from ..files.modelfile import FORMAT_VERSION, K_VERSION, ModelFile, load_model
from ..files.text import Corpus, display_path, load_corpus
from ..insight.copies import CopyIndex
from ..sample import default_streams, evaluate, generate
from .common import engine_for
from .console import EvalProgress, bits, hms, note, silence_stdout, write
from .options import generation_from_args
from .remember import model_path


def sample(args: argparse.Namespace) -> int:
    gen = generation_from_args(args)  # settings first: a mistake is reported before any loading
    model = load_model(model_path(args))
    engine = engine_for(args, model.config)
    index = None
    if args.copies is not None:  # read and index first: a bad file fails before generating
        train = load_corpus(args.copies, args.encoding)
        index = CopyIndex.build(train.ids, train.vocab, n=gen.copies_min)
    made: list[str] = []
    chars = generate(model, **gen.sampling(), engine=engine)
    out = sys.stdout
    try:
        buf = [gen.prime]
        last = gen.prime[-1:]
        for ch in chars:  # flush per line or every 32 characters: live, but not a syscall each
            buf.append(ch)
            made.append(ch)
            last = ch
            if ch == "\n" or len(buf) >= 32:
                write(out, "".join(buf))
                out.flush()
                buf = []
        if out.isatty() and last and last != "\n":  # the shell prompt on a line of its own
            buf.append("\n")
        write(out, "".join(buf))
        out.flush()
    except BrokenPipeError:
        silence_stdout()
    if index is not None:
        note(_copies_line(index, "".join(made), args.copies))
    return 0


def _copies_line(index: CopyIndex, generated: str, name: str) -> str:
    """One line for stderr: how much of ``generated`` is copied, and the longest copy; a copy
    must say as much as ``index.n`` ordinary characters (``charlstm_core.insight.copy_rule``)."""
    found = index.find(generated)
    rule = f"spans of {index.n}+ characters carrying {index.min_bits:.0f}+ bits"
    skipped = ""
    if found.plain > 0:
        share = f"{found.plain:.0%}" if found.plain >= 0.005 else "under 1%"
        skipped = f"; another {share} verbatim but too plain to count, such as indentation"
    if not found.spans:
        return f"nothing copied from {name} ({rule}){skipped}"
    a, b, _, line = max(found.spans, key=lambda s: s[1] - s[0])
    return (
        f"{found.fraction:.0%} copied verbatim from {name} ({rule}), "
        f"longest {b - a:,} characters (from line {line:,}){skipped}"
    )


def read_for(model: ModelFile, path: str, encoding: str | None) -> Corpus:
    """TEXT encoded with the model's vocabulary; one clear error when it has other characters."""
    try:
        return load_corpus(path, encoding, vocab=model.vocab)
    except CorpusMismatchError as e:
        raise CorpusMismatchError(
            unrepresentable(display_path(path), e.missing, "So the model cannot score it."),
            missing=e.missing,
        ) from None


def eval_(args: argparse.Namespace) -> int:
    if args.streams is not None and args.streams < 1:
        raise ConfigError(f"--streams must be at least 1, not {args.streams}.")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more characters, not {args.warmup}.")
    model = load_model(args.model)
    corpus = read_for(model, args.text, args.encoding)
    engine = engine_for(args, model.config)
    streams = _bounded_streams(corpus.n_chars, args.streams, args.warmup)
    progress = EvalProgress() if sys.stderr.isatty() else None
    try:
        result = evaluate(model, corpus.ids, streams=streams, warmup=args.warmup,
                          progress=progress, engine=engine)  # fmt: skip
    finally:
        if progress is not None:
            progress.clear()
    nats = result.nats
    how = f"{result.streams:,} stream{'s' * (result.streams != 1)}"
    if result.streams > 1:
        how += f", each warmed up on {result.warmup:,} characters"
    print(f"text:      {corpus.name} ({result.scored:,} characters scored, {how})")
    print(f"nats/char: {nats:.6f}")
    print(f"bits/char: {bits(nats):.6f}")
    print(f"perplexity: {math.exp(nats):.4f}")
    return 0


def _bounded_streams(n_chars: int, streams: int | None, warmup: int) -> int | None:
    """--streams, or fewer, so that each piece is at least as long as its warm-up and reading
    costs at most twice the characters scored (S pieces of a text of N characters, each
    warmed up on W before it, read about N + (S - 1) W): ``--streams 1e9`` or ``--warmup 1e9``
    on a short text would otherwise read it thousands of times over. Says so when it lowers."""
    n = max(1, n_chars - 1)
    asked = streams if streams is not None else default_streams(n)
    most = min(n, 1 + n // warmup) if warmup > 0 else n
    if asked <= most:
        return streams
    if most == 1:
        note(
            f"a warm-up of {warmup:,} characters covers the whole text: reading it as one "
            "stream, exactly (as --streams 1 does; slower on a long text)."
        )
    else:
        note(
            f"{asked:,} streams over {n_chars:,} characters would read each piece's warm-up of "
            f"{warmup:,} more often than the piece itself: reading {most:,} streams instead."
        )
    return most


def _file_version(path: str) -> int | str:
    """The format version stored in the (already validated) model file."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            return int(npz[K_VERSION].reshape(()))
    except Exception:  # validated just before; only a race with another writer gets here
        return "?"


def info(args: argparse.Namespace) -> int:
    args.model = model_path(args)
    mf: ModelFile = load_model(args.model)
    c = mf.config
    chars = "".join(mf.vocab.chars)
    shown = repr(chars[:60]) + (f" and {len(chars) - 60:,} more" if len(chars) > 60 else "")
    rows = [
        ("file", f"{os.path.abspath(args.model)} (format version {_file_version(args.model)}, "
         f"this program reads up to {FORMAT_VERSION})"),
        ("architecture", f"{c.num_layers} LSTM layer(s) x {c.hidden_size} units, "
         f"dropout {c.dropout:g}, {c.dtype}"),
        ("vocabulary", f"{c.vocab_size:,} characters: {shown}"),
        ("parameters", f"{count_params(c):,}"),
    ]  # fmt: skip
    t = mf.train
    if t is None:
        rows.append(("training", "no training state (weights only; cannot be continued)"))
    else:
        best = t.best_val_loss
        rows += [
            ("steps", f"{t.step:,} (planned {t.total_steps:,})"),
            ("elapsed", hms(t.elapsed_s)),
            ("best val loss", "-" if best is None else f"{best:.4f} nats/char "
             f"({bits(best):.4f} bits/char)"),
        ]  # fmt: skip
        if t.rollbacks:  # self-healing (charlstm_core.training.heal)
            n, last = len(t.rollbacks), t.rollbacks[-1]
            rows.append(
                ("healed", f"{n} blow-up{'s' * (n != 1)}, the last at step {last.from_step:,} "
                 f"({last.describe()}); learning rate now x{t.lr_scale:.3g}")
            )  # fmt: skip
        fp = t.corpus
        size = fp.get("size")
        size_s = f"{size:,} bytes" if isinstance(size, int) else "size unknown"
        sha = str(fp.get("sha256", ""))[:16]
        rows.append(
            ("trained on", f"{fp.get('name', '?')} ({size_s}, {fp.get('encoding', '?')}, "
             f"sha256 {sha}...)")
        )  # fmt: skip
        settings = " ".join(f"{k}={v}" for k, v in dataclasses.asdict(t.config).items())
        rows.append(("settings", settings))
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        write(sys.stdout, f"{key + ':':<{width}} {value}\n")
    return 0
