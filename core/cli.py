"""The ``charlstm`` command line: train, continue, sample, evaluate, inspect and describe models.

A thin shell over the engine: it turns options into ``ModelConfig``/``TrainConfig`` (defaults read
from their fields), prints the trainer's events, and turns every expected problem into one line on
stderr (exit 2 for usage, 1 for failures, 128 + the signal number after Ctrl-C, SIGTERM or
SIGHUP, which stop the run and save it: see core/console.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import __version__, sweep
from .backend import DEVICE_CHOICES, list_devices, make_engine, parse_choice
from .config import ModelConfig, TrainConfig
from .console import StopSignals, one_line_warnings, signal_name
from .copies import CopyIndex
from .data import Corpus, display_path, load_corpus
from .errors import (
    CharLSTMError,
    ConfigError,
    CorpusMismatchError,
    DecodeError,
    DeviceLostError,
    GpuMemoryError,
    ModelFileError,
    TrainingDiverged,
)
from .events import (
    CheckpointEvent,
    EvalEvent,
    Event,
    RollbackEvent,
    SampleEvent,
    StepEvent,
    TrainSummary,
)
from .inspect import DETECTORS, KINDS, analyse, detectors, max_passage, rank_units
from .inspect import surprising_spans as _surprising_spans
from .inspect_html import render as _render_html
from .inspect_html import visible as _visible
from .inspect_html import write_atomic
from .model import count_params
from .modelfile import FORMAT_VERSION, K_VERSION, ModelFile, ModelLock, load_model, save_target
from .options import add_config_options, configs_from_args, given, given_flags, grid_aliases
from .runs import DB_NAME, HOME_ENV, Run, RunRecorder, RunStore
from .sample import EVAL_STREAMS_MAX, EVAL_WARMUP, check_sampling, evaluate, generate
from .trainer import Trainer

PROG = "charlstm"
_RUNS_DB_DEFAULT_HELP = f"${HOME_ENV}/{DB_NAME}, else the user's data folder"
DEFAULT_MINUTES = 10.0  # how long `charlstm train` runs when no --steps/--epochs/--minutes is given
DEBUG_ENV = "CHARLSTM_DEBUG"  # set to 1 to see the traceback of an unexpected error
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
NON_TTY_LOG_EVERY = 100  # steps between progress lines when not on a terminal and no evaluations
SWEEP_DEFAULTS = {"sample_every": 0}  # a sweep's own defaults: samples only cost it time

_GEN_DEFAULTS = {k: p.default for k, p in inspect.signature(generate).parameters.items()}


class _UsageError(Exception):
    """A mistake in the command line: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (via _UsageError) instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------------------------
# Small helpers


def _err(message: str) -> None:
    _write(sys.stderr, f"{PROG}: error: {message}\n")


def _warn(message: str) -> None:
    _write(sys.stderr, f"{PROG}: warning: {message}\n")


def _note(message: str) -> None:
    _write(sys.stderr, f"{PROG}: {message}\n")


def _write(stream: TextIO, text: str) -> None:
    """Write ``text``, replacing characters the stream's encoding cannot show (e.g. a cp1252
    console) instead of failing in the middle of a sample."""
    try:
        stream.write(text)
    except UnicodeEncodeError:
        enc = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(enc, "replace").decode(enc))


def _hms(seconds: float) -> str:
    """``h:mm:ss`` of a duration in seconds."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _count(n: float, noun: str) -> str:
    """ "1 minute", "2.5 minutes", "1,000 steps": ``n`` with ``noun`` in the right number."""
    shown = f"{n:,}" if isinstance(n, int) else f"{n:g}"
    return f"{shown} {noun}{'' if n == 1 else 's'}"


def _bits(nats: float) -> float:
    return nats / math.log(2.0)


def _fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------------------------------
# The parser


def _add_runs_db(group: Any, default: Any = None) -> None:
    group.add_argument(
        "--runs-db",
        metavar="PATH",
        default=default,
        help=f"the runs database (default: {_RUNS_DB_DEFAULT_HELP})",
    )


def _add_record_options(group: Any) -> None:
    _add_runs_db(group)
    group.add_argument(
        "--no-record", action="store_true", help="do not record this run in the runs database"
    )
    group.add_argument("--name", metavar="NAME", help="the run's name in the runs database")


def build_parser() -> argparse.ArgumentParser:
    """The ``charlstm`` argument parser with its sub-commands."""
    p = _Parser(
        prog=PROG,
        description="Train, sample, evaluate and inspect character-level LSTM models (NumPy).",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options. "
        f"Set {DEBUG_ENV}=1 to see the traceback of an unexpected error.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    t = sub.add_parser(
        "train",
        help="train a model on a text file, or continue one (--resume)",
        description="Train a new model on TEXT, or continue a checkpoint with --resume MODEL TEXT. "
        "The model is saved to --out every --checkpoint-every steps, at the end, after Ctrl-C "
        "(exit 130) and after a divergence (the last good weights, exit 1).",
    )
    t.add_argument("text", metavar="TEXT", nargs="?", help="training text file")
    t.add_argument(
        "--resume",
        metavar="MODEL",
        help="continue this checkpoint (architecture and unset settings come from it); "
        "with no --steps/--epochs/--minutes it finishes the run it was saved from",
    )
    t.add_argument(
        "--out",
        metavar="MODEL",
        help="where to save the model (default: TEXT's name with .npz in the current folder; "
        "with --resume, the resumed file)",
    )
    t.add_argument("--encoding", help="encoding of TEXT (default: UTF-8; e.g. latin-1, cp1252)")
    how_long = t.add_argument_group(
        f"how long (one of; default --minutes {DEFAULT_MINUTES:g} for a new model)"
    ).add_mutually_exclusive_group()
    how_long.add_argument(
        "--steps", type=int, metavar="N", help="optimizer steps (with --resume: N more)"
    )
    how_long.add_argument(
        "--epochs", type=float, metavar="E", help="passes over the text (with --resume: E more)"
    )
    how_long.add_argument(
        "--minutes", type=float, metavar="M", help="minutes of training in this session"
    )
    add_config_options(t.add_argument_group("model (new models only)"), ModelConfig)
    add_config_options(t.add_argument_group("training"), TrainConfig)
    out = t.add_argument_group("output")
    out.add_argument(
        "--log-jsonl",
        metavar="FILE",
        help="write every event as one JSON object per line (appended to with --resume)",
    )
    out.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no samples, only the result"
    )
    _add_record_options(out)

    s = sub.add_parser(
        "sample",
        help="generate text with a model",
        description="Generate text with MODEL and stream it to stdout (the prime text first).",
    )
    s.add_argument("model", metavar="MODEL", help="model file (.npz)")
    s.add_argument("--prime", default="", help="text to warm the model up on and continue")
    s.add_argument(
        "--length",
        type=int,
        default=_GEN_DEFAULTS["length"],
        metavar="N",
        help="characters to generate (default: %(default)s)",
    )
    s.add_argument(
        "--temperature",
        type=float,
        default=_GEN_DEFAULTS["temperature"],
        metavar="T",
        help="0 always picks the most likely character; higher is more random "
        "(default: %(default)s)",
    )
    s.add_argument(
        "--top-k",
        type=int,
        default=_GEN_DEFAULTS["top_k"],
        metavar="K",
        help="draw only among the K most likely characters, 0 = off (default: %(default)s)",
    )
    s.add_argument(
        "--top-p",
        type=float,
        default=_GEN_DEFAULTS["top_p"],
        metavar="P",
        help="draw only among the most likely characters whose probabilities sum to P "
        "(default: %(default)s)",
    )
    s.add_argument("--seed", type=int, help="random seed: the same seed gives the same text")
    s.add_argument(
        "--copies",
        metavar="TEXT",
        help="report on stderr how much of the generated text occurs verbatim in TEXT "
        "(the copied fraction and the longest copy)",
    )
    s.add_argument(
        "--copies-min",
        type=int,
        default=20,
        metavar="N",
        help="shortest verbatim span that counts as a copy, in characters (default: %(default)s)",
    )
    s.add_argument("--encoding", help="encoding of the --copies TEXT (default: UTF-8)")

    e = sub.add_parser(
        "eval",
        help="mean loss of a model over a text",
        description="Print the mean next-character loss of MODEL over TEXT in nats and bits per "
        "character; every character after the first is scored once. The text is cut into "
        "--streams pieces read side by side (fast), each carrying its state through its piece; "
        "each piece after the first starts from a zero state warmed up on the --warmup "
        "characters before it (read, not scored), so the one approximation is that a piece "
        "forgets what came earlier than that. --streams 1 reads the whole text in order: exact, "
        "and much slower on long texts. Progress is shown on a terminal.",
    )
    e.add_argument("model", metavar="MODEL", help="model file (.npz)")
    e.add_argument("text", metavar="TEXT", help="text file")
    e.add_argument("--encoding", help="encoding of TEXT (default: UTF-8)")
    e.add_argument(
        "--streams",
        type=int,
        default=None,
        metavar="N",
        help="pieces of the text read side by side (default: one per "
        f"{8 * EVAL_WARMUP:,} characters, at most {EVAL_STREAMS_MAX}; 1 = exact, in order)",
    )
    e.add_argument(
        "--warmup",
        type=int,
        default=EVAL_WARMUP,
        metavar="W",
        help="characters each piece reads, unscored, before its own (default: %(default)s)",
    )

    n = sub.add_parser(
        "inspect",
        help="how surprised a model is by a text, character by character",
        description="Print MODEL's bits per character over TEXT and the most surprising "
        "stretches; --html writes one self-contained page coloured by surprise (or by one unit "
        "with --unit) with the model's top-5 predictions on hover.",
    )
    n.add_argument("model", metavar="MODEL", help="model file (.npz)")
    n.add_argument("text", metavar="TEXT", help="text file")
    n.add_argument("--encoding", help="encoding of TEXT (default: UTF-8)")
    n.add_argument(
        "--chars",
        type=int,
        default=10_000,
        metavar="N",
        help="read only the first N characters of TEXT (default: %(default)s)",
    )
    n.add_argument(
        "--spans", type=int, default=10, metavar="N", help="surprising stretches to list"
    )
    n.add_argument("--html", metavar="FILE", help="write the coloured page to FILE")
    n.add_argument(
        "--unit",
        metavar="LAYER:UNIT",
        help="colour the page by this unit instead of by surprise (0-based, e.g. 1:37)",
    )
    n.add_argument(
        "--kind",
        choices=tuple(KINDS),
        default="c",
        help="with --unit: c = the cell value tanh(c), h = the hidden value (default: c)",
    )

    c = sub.add_parser(
        "cells",
        help="find units that track quotes, brackets, line position...",
        description="Run MODEL over TEXT and print, for each simple detector (inside quotes, "
        "bracket depth, characters since the newline, ...), the units whose activation "
        "correlates best with it, with Pearson's r.",
    )
    c.add_argument("model", metavar="MODEL", help="model file (.npz)")
    c.add_argument("text", metavar="TEXT", help="text file")
    c.add_argument("--encoding", help="encoding of TEXT (default: UTF-8)")
    c.add_argument(
        "--chars",
        type=int,
        default=5_000,
        metavar="N",
        help="read only the first N characters of TEXT (default: %(default)s)",
    )
    c.add_argument("--top", type=int, default=5, metavar="N", help="units per detector")
    c.add_argument(
        "--kind",
        choices=tuple(KINDS),
        default="c",
        help="c = the cell value tanh(c), h = the hidden value (default: c)",
    )

    i = sub.add_parser(
        "info",
        help="describe a model file",
        description="Print a model's architecture, size, vocabulary and training record.",
    )
    i.add_argument("model", metavar="MODEL", help="model file (.npz)")
    sub.add_parser(
        "devices",
        help="list the devices training can run on",
        description="List the CPU and each usable NVIDIA GPU (CuPy version, CUDA runtime and "
        "driver, name and memory), or say why no GPU is usable.",
    )
    for sp in (t, s, e):
        sp.add_argument(
            "--device",
            default="auto",
            type=_device_choice,
            metavar="{" + ",".join(DEVICE_CHOICES) + "}",
            help="where to run: the GPU when one is usable (auto), the CPU, or a GPU (gpu, "
            "gpu:N); see 'charlstm devices' (default: auto)",
        )
    _add_runs_parser(sub)
    _add_sweep_parser(sub)
    return p


def _device_choice(value: str) -> str:
    try:
        parse_choice(value)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _engine(args: argparse.Namespace, cfg: ModelConfig):
    """The engine for ``--device`` (DeviceUnavailableError: one line saying why)."""
    return make_engine(args.device, cfg)


def _add_runs_parser(sub: Any) -> None:
    r = sub.add_parser(
        "runs",
        help="list, show, rename and delete recorded runs",
        description="Every training run is recorded in the runs database. With no ACTION, list "
        "them, newest first.",
    )
    _add_runs_db(r)
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    acts = r.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    show = acts.add_parser("show", help="one run's settings and results")
    show.add_argument("id", metavar="ID", type=int, help="the run's id (first column of the list)")
    # SUPPRESS: an option given before ACTION (runs --json show 1) is not reset by ACTION's
    show.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON with curves"
    )
    _add_runs_db(show, argparse.SUPPRESS)
    rm = acts.add_parser("rm", help="delete a run (its model file stays unless --with-model)")
    rm.add_argument("id", metavar="ID", type=int, nargs="+", help="the runs' ids")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--with-model", action="store_true", help="also delete the model files")
    _add_runs_db(rm, argparse.SUPPRESS)
    mv = acts.add_parser("rename", help="give a run a new name")
    mv.add_argument("id", metavar="ID", type=int, help="the run's id")
    mv.add_argument("name", metavar="NAME", help="its new name")
    _add_runs_db(mv, argparse.SUPPRESS)


def _add_sweep_parser(sub: Any) -> None:
    w = sub.add_parser(
        "sweep",
        help="train every combination of a few settings and rank them",
        description="Train a new model on TEXT for each combination of the --grid values, all "
        "for the same budget, record each as a run and print them ranked by best validation "
        "loss. Example: charlstm sweep input.txt --grid lr=2e-3,4e-3,8e-3 --grid hidden=256,512 "
        "--minutes 5",
    )
    w.add_argument("text", metavar="TEXT", help="training text file")
    w.add_argument(
        "--grid",
        metavar="KEY=V1,V2,...",
        action="append",
        required=True,
        help="a setting and its values (repeat for more settings); KEY is an option name of "
        "'charlstm train' without dashes (lr, hidden, layers, seq-len, ...) or a field name",
    )
    budget = w.add_argument_group("budget of each point (one of)").add_mutually_exclusive_group(
        required=True
    )
    budget.add_argument("--steps", type=int, metavar="N", help="optimizer steps")
    budget.add_argument("--epochs", type=float, metavar="E", help="passes over the text")
    budget.add_argument("--minutes", type=float, metavar="M", help="minutes of training")
    w.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="points trained at once, in separate processes sharing the cores (default: 1)",
    )
    w.add_argument(
        "--out-dir",
        metavar="DIR",
        help="folder for the points' models (default: TEXT's name, 'sweep' and the time)",
    )
    w.add_argument("--encoding", help="encoding of TEXT (default: UTF-8)")
    _add_runs_db(w)
    w.add_argument("-q", "--quiet", action="store_true", help="only the ranked table")
    add_config_options(w.add_argument_group("base model settings"), ModelConfig)
    add_config_options(w.add_argument_group("base training settings"), TrainConfig, SWEEP_DEFAULTS)


# ---------------------------------------------------------------------------------------------
# train


class _Progress:
    """Prints training events to stderr: one rewritten line on a terminal, plain lines otherwise,
    samples as headed blocks, and every event to a JSON-lines log when asked."""

    def __init__(self, trainer: Trainer, quiet: bool, log: TextIO | None) -> None:
        self.quiet = quiet
        self.log = log
        self.tty = sys.stderr.isatty()
        tc = trainer.train_config
        self.periodic_eval = bool(tc.eval_every and tc.val_fraction > 0)
        self.start_step = trainer.step
        self.start_time = time.perf_counter()
        self.val: float | None = None
        self.last: StepEvent | None = None
        self.line_len = 0
        self.drawn_at = 0.0

    def __call__(self, event: Event) -> None:
        if self.log is not None:
            self.log_record({"event": event.kind, **dataclasses.asdict(event)})
        if isinstance(event, RollbackEvent):  # shown even with --quiet: it changes the run
            self.clear()
            _note(f"step {event.from_step:,}: {event.reason}; {event.describe()}")
        if self.quiet:
            return
        if isinstance(event, StepEvent):
            self.last = event
            if self.tty:
                now = time.perf_counter()
                if now - self.drawn_at >= 0.1 or event.step >= event.total_steps:
                    self.draw()
            elif not self.periodic_eval and event.step % NON_TTY_LOG_EVERY == 0:
                self.draw()
        elif isinstance(event, EvalEvent):
            self.val = event.val_loss
            self.draw()
        elif isinstance(event, SampleEvent):
            self.clear()
            val = "" if event.val_loss is None else f", val loss {event.val_loss:.4f}"
            head = f"--- sample at step {event.step}{val}, temperature {event.temperature:g} ---"
            _write(sys.stderr, f"{head}\n{event.text}\n{'-' * len(head)}\n")
        elif isinstance(event, CheckpointEvent) and not self.tty:
            _write(sys.stderr, f"checkpoint: step {event.step} saved to {event.path}\n")
        sys.stderr.flush()

    def log_record(self, record: dict[str, Any]) -> None:
        assert self.log is not None
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()

    def status(self) -> str:
        e = self.last
        if e is None:
            return ""
        session = time.perf_counter() - self.start_time
        done = e.step - self.start_step
        eta = (e.total_steps - e.step) * session / done if done > 0 else float("nan")
        pct = 100.0 * e.step / max(e.total_steps, 1)
        return (
            f"step {e.step:,}/{e.total_steps:,} ({pct:.0f}%) | epoch {e.epoch:.2f} | "
            f"loss {e.loss:.4f} | val {_fmt_loss(self.val)} | {e.chars_per_sec:,.0f} chars/s | "
            f"{_hms(e.elapsed_s)} elapsed | ETA {_hms(eta)}"
        )

    def draw(self) -> None:
        line = self.status()
        if not line:
            return
        if self.tty:
            width = shutil.get_terminal_size((100, 24)).columns - 1
            line = line[:width]
            pad = " " * max(0, self.line_len - len(line))
            _write(sys.stderr, f"\r{line}{pad}")
            self.line_len = len(line)
            self.drawn_at = time.perf_counter()
        else:
            _write(sys.stderr, line + "\n")

    def clear(self) -> None:
        """End the rewritten line so that what follows starts on a fresh one."""
        if self.tty and self.line_len:
            _write(sys.stderr, "\n")
            self.line_len = 0

    def finish(self) -> None:
        if not self.quiet and self.tty and self.last is not None:
            self.draw()  # the final state, including the last validation loss
        self.clear()


def _stop_message(signum: int) -> str:
    again = "Ctrl-C" if signum == 2 else f"{signal_name(signum)}"
    return (
        f"\n{PROG}: {signal_name(signum)}: stopping after this step and saving a checkpoint "
        f"({again} again to quit sooner)\n"
    )


def _check_out_path(out: str, text: str | None) -> str:
    """Absolute path to save to; _UsageError if it cannot or should not be written.

    The rule for special files is ``core.modelfile.save_target``'s, the app's too: devices,
    FIFOs and folders are refused, a symlink is saved through to its target.
    """
    path = os.path.abspath(out)
    shown = display_path(out)
    if text is not None and _same_file(path, text):
        raise _UsageError(f"--out {shown} is the training text itself; choose another file name.")
    try:
        target = save_target(path)
    except ModelFileError as e:
        raise _UsageError(f"--out: {e}") from None
    folder = os.path.dirname(target)
    if not os.access(folder, os.W_OK):
        raise _UsageError(f"cannot save to {shown}: the folder {folder} is not writable.")
    if os.path.isfile(target):
        with open(target, "rb") as f:
            if f.read(2) != b"PK":
                raise _UsageError(
                    f"{shown} exists and is not a model file; refusing to overwrite it. "
                    "Choose another --out."
                )
    return path


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (the same inode, or the same real path for
    a file not yet created)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _check_log_path(log: str, text: str | None, out: str, model: str | None) -> None:
    """_UsageError if the JSON-lines log would be written over the text or a model file. A
    stream (a FIFO, /dev/stdout) is fine."""
    try:
        mode = os.stat(log).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        return
    for what, other in (("the training text", text), ("the model file", out), ("--resume", model)):
        if other is not None and _same_file(log, other):
            raise _UsageError(
                f"--log-jsonl {display_path(log)} is {what}; writing the log would destroy it. "
                "Choose another file name."
            )


def _new_run(args: argparse.Namespace) -> tuple[Trainer, str, str]:
    """A Trainer for a new model; returns (trainer, output path, description of the run)."""
    if args.text is None:
        raise _UsageError("give the training text: charlstm train TEXT (or --resume MODEL TEXT)")
    duration = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    if all(v is None for v in duration.values()):
        duration["minutes"] = DEFAULT_MINUTES
    mc, tc = configs_from_args(args, **duration)
    out = _check_out_path(args.out or Path(args.text).stem + ".npz", args.text)
    engine = _engine(args, mc)  # before reading the text: a GPU that is missing fails at once
    corpus = load_corpus(args.text, args.encoding)
    mc = dataclasses.replace(mc, vocab_size=corpus.vocab.size)
    trainer = Trainer(corpus, mc, tc, checkpoint_path=out, device=engine)
    if tc.minutes is not None:
        length = _count(tc.minutes, "minute")
    else:
        length = f"{trainer.total_steps:,} steps"
        if tc.epochs is not None:
            length += f" ({tc.epochs:g} epochs)"
    layers = f"{mc.num_layers} layer{'s' if mc.num_layers > 1 else ''}"
    what = (
        f"training {layers} x {mc.hidden_size} units ({count_params(mc):,} parameters, "
        f"vocabulary {mc.vocab_size}) on {corpus.name} ({corpus.n_chars:,} characters) "
        f"for {length} on {trainer.device_label}; saving to {out}"
    )
    return trainer, out, what


def _resume_run(args: argparse.Namespace) -> tuple[Trainer, str, str]:
    """A Trainer continuing ``--resume``; returns (trainer, output path, description)."""
    arch = given_flags(args, ModelConfig)
    if arch:
        raise _UsageError(
            f"{', '.join(arch)} cannot be changed when continuing a model; its architecture "
            "comes from the checkpoint."
        )
    if args.text is None:
        raise _UsageError(
            "give the text to continue on: charlstm train --resume MODEL TEXT "
            "(checkpoints record the text's fingerprint, not its path)"
        )
    if args.steps is not None and args.steps < 1:
        raise _UsageError(f"--steps must be at least 1, not {args.steps}.")
    if args.epochs is not None and not args.epochs > 0:
        raise _UsageError(f"--epochs must be above 0, not {args.epochs}.")
    mf = load_model(args.resume)
    st = mf.train
    if st is None:
        raise ModelFileError(
            f"{args.resume} holds weights only, without the training state needed to continue "
            "it. Train a new model instead."
        )
    out = _check_out_path(args.out or args.resume, args.text)
    base = st.config.replace(**given(args, TrainConfig), steps=None, epochs=None, minutes=None)
    if args.minutes is not None:
        tc, length = base.replace(minutes=args.minutes), _count(args.minutes, "more minute")
    elif args.steps is not None:
        tc, length = base.replace(steps=st.step + args.steps), _count(args.steps, "more step")
    elif args.epochs is not None:
        tc, length = (
            base.replace(steps=st.step + 1),
            f"{args.epochs:g} more epoch{'s' * (args.epochs != 1)}",
        )
    elif st.step < st.total_steps:
        tc, length = base.replace(steps=st.total_steps), "the rest of its planned run"
    else:
        raise _UsageError(
            f"{args.resume} has completed its planned {st.total_steps:,} steps; say how much "
            "longer to train with --steps, --epochs or --minutes."
        )
    tc.validate()
    encoding = args.encoding or st.corpus.get("encoding")
    corpus = load_corpus(args.text, encoding, vocab=mf.vocab)
    if corpus.sha256 != st.corpus.get("sha256"):
        _warn(
            f"{corpus.name} is not the text {args.resume} was trained on "
            f"({st.corpus.get('name', 'unknown')}); continuing on it, its streams start over."
        )
    engine = _engine(args, mf.config)
    trainer = Trainer(corpus, mf.config, tc, resume=mf, checkpoint_path=out, device=engine)
    if args.epochs is not None:  # N more epochs of this text, in this text's batches
        more = max(1, math.ceil(args.epochs * trainer.batches_per_epoch))
        tc = tc.replace(steps=st.step + more)
        trainer = Trainer(corpus, mf.config, tc, resume=mf, checkpoint_path=out, device=engine)
    what = (
        f"continuing {args.resume} from step {st.step:,} on {corpus.name} for {length} "
        f"on {trainer.device_label}"
    )
    if tc.minutes is None:
        what += f" (to step {trainer.total_steps:,})"
    what += f"; saving to {out}"
    return trainer, out, what


def _drive(trainer: Trainer, on_event: Callable[[Event], None]) -> TrainSummary:
    """Pull every event of ``trainer.run()``, handing each to ``on_event``; returns the summary."""
    gen = trainer.run()
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        on_event(event)


def _train(args: argparse.Namespace) -> int:
    if args.log_jsonl:  # before anything is read or written
        out_arg = args.out or args.resume or (Path(args.text).stem + ".npz" if args.text else "")
        _check_log_path(args.log_jsonl, args.text, os.path.abspath(out_arg), args.resume)
    trainer, out, what = _resume_run(args) if args.resume else _new_run(args)
    # One writer per model file for the whole run: a second run on the same --out is refused.
    with ModelLock(out):
        return _train_locked(args, trainer, out, what)


def _train_locked(args: argparse.Namespace, trainer: Trainer, out: str, what: str) -> int:
    log = None
    if args.log_jsonl:
        try:
            log = open(args.log_jsonl, "a" if args.resume else "w", encoding="utf-8")
        except OSError as e:
            raise CharLSTMError(
                f"Cannot write the log {args.log_jsonl}: {e.strerror or e}."
            ) from None
    recorder = None
    try:
        if not args.quiet:
            _note(what)
            _warn_unseen_validation(trainer)
        progress = _Progress(trainer, args.quiet, log)
        if not args.no_record:

            def warn(message: str) -> None:
                progress.clear()
                _warn(message)

            recorder = RunRecorder.for_trainer(
                args.runs_db, trainer, model_path=out, name=args.name, on_warning=warn
            )
        return _run_training(trainer, out, progress, recorder)
    except BaseException as e:
        if recorder is not None:
            recorder.finish(error=e)  # an unexpected error: the run is marked crashed
        raise
    finally:
        if log is not None:
            log.close()


def _warn_unseen_validation(trainer: Trainer) -> None:
    """Say when the validation part holds characters the training part never shows."""
    from .plan import unseen_in_validation, unseen_message

    tc, corpus = trainer.train_config, trainer.corpus
    unseen = unseen_in_validation(corpus.ids, corpus.vocab, tc.val_fraction, tc.val_split)
    if unseen.distinct:
        how = " Use --val-split blocks." if tc.val_split == "last" else ""
        _warn(unseen_message(unseen, tc.val_split) + how)


def _run_training(
    trainer: Trainer, out: str, progress: _Progress, recorder: RunRecorder | None = None
) -> int:
    on_event: Callable[[Event], None] = progress
    if recorder is not None:

        def on_event(event: Event) -> None:
            recorder(event)
            progress(event)

    stop = StopSignals(trainer.request_stop, _stop_message)
    with stop:  # SIGINT, SIGTERM, SIGHUP: stop after this step, save, exit 128 + signal
        try:
            summary = _drive(trainer, on_event)
        except KeyboardInterrupt:
            # A second signal, or a Ctrl-C that did not go through the handler: save what there is.
            progress.clear()
            try:
                path = trainer.save(out)
            except KeyboardInterrupt:
                _note(f"interrupted again while saving; {out} keeps its previous contents.")
                return stop.exit_status
            finally:
                if recorder is not None:
                    recorder.finish(status="stopped")
            _report_interrupt(progress, trainer, path, stop.signum)
            return stop.exit_status
        except TrainingDiverged as e:
            progress.clear()
            try:
                path = trainer.save(out)
            finally:
                if recorder is not None:
                    recorder.finish(error=e)
            if progress.log is not None:
                progress.log_record({"event": "diverged", "step": trainer.step, "path": path})
            _err(f"{e} They are saved in {path}.")
            return EXIT_FAILURE
        except (GpuMemoryError, DeviceLostError) as e:  # the trainer kept or saved the model
            progress.clear()
            if recorder is not None:
                recorder.finish(error=e)
            _err(str(e))
            return EXIT_FAILURE
        progress.finish()
        if progress.log is not None:
            progress.log_record({"event": "summary", **dataclasses.asdict(summary)})
        try:
            path = summary.checkpoint_path or trainer.save(out)
        except KeyboardInterrupt:
            _note(f"interrupted again while saving; {out} keeps its previous contents.")
            return stop.exit_status
        finally:
            if recorder is not None:
                recorder.finish(summary=summary, status="stopped" if stop.requested else None)
    if stop.requested:
        _report_interrupt(progress, trainer, path, stop.signum)
        return stop.exit_status
    best = summary.best_val_loss
    val = "" if best is None else f", best validation loss {best:.4f} nats/char"
    if summary.rollbacks:
        n = summary.rollbacks
        val += f", healed {n} blow-up{'s' * (n != 1)} (learning rate x{trainer.lr_scale:.3g})"
    run_id = recorder.recorded_id if recorder is not None else None
    run = "" if run_id is None else f" (run {run_id})"
    _note(
        f"trained to step {summary.steps:,} in {_hms(summary.elapsed_s)}{val}; saved to {path}{run}"
    )
    return 0


def _report_interrupt(
    progress: _Progress, trainer: Trainer, path: str, signum: int | None = None
) -> None:
    how = "interrupted" if signum in (None, 2) else f"stopped by {signal_name(signum)}"
    try:  # after a hang-up (SIGHUP) the terminal may be gone: the save is what matters
        if progress.log is not None:
            record = {"event": "interrupted", "step": trainer.step, "path": path}
            if signum is not None:
                record["signal"] = signal_name(signum)
            progress.log_record(record)
        text = display_path(trainer.corpus.path) if trainer.corpus.path else "TEXT"
        _note(
            f"{how} at step {trainer.step:,}; checkpoint saved to {display_path(path)}. "
            f"Continue with: {PROG} train --resume {display_path(path)} {text}"
        )
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------------------------
# sample, eval, info


def _sample(args: argparse.Namespace) -> int:
    check_sampling(args.temperature, args.top_k, args.top_p, args.length)
    if args.seed is not None and args.seed < 0:
        raise ConfigError(f"--seed must be 0 or a positive whole number, not {args.seed}.")
    model = load_model(args.model)
    engine = _engine(args, model.config)
    index = None
    if args.copies is not None:  # read and index first: a bad file fails before generating
        train = load_corpus(args.copies, args.encoding)
        index = CopyIndex.build(train.ids, train.vocab, n=args.copies_min)
    made: list[str] = []
    chars = generate(
        model,
        prime=args.prime,
        length=args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        engine=None if engine.kind == "cpu" else engine,
    )
    out = sys.stdout
    try:
        buf = [args.prime]
        last = args.prime[-1:]
        for ch in chars:  # flush per line or every 32 characters: live, but not a syscall each
            buf.append(ch)
            made.append(ch)
            last = ch
            if ch == "\n" or len(buf) >= 32:
                _write(out, "".join(buf))
                out.flush()
                buf = []
        if out.isatty() and last and last != "\n":  # the shell prompt on a line of its own
            buf.append("\n")
        _write(out, "".join(buf))
        out.flush()
    except BrokenPipeError:
        _silence_stdout()
    if index is not None:
        _note(_copies_line(index, "".join(made), args.copies))
    return 0


def _copies_line(index: CopyIndex, generated: str, name: str) -> str:
    """One line for stderr: how much of ``generated`` is copied, and the longest copy."""
    found = index.find(generated)
    if not found.spans:
        return f"nothing copied verbatim from {name} (spans of {index.n}+ characters)"
    a, b, _, line = max(found.spans, key=lambda s: s[1] - s[0])
    return (
        f"{found.fraction:.0%} copied verbatim from {name} (spans of {index.n}+ characters), "
        f"longest {b - a:,} characters (from line {line:,})"
    )


def _silence_stdout() -> None:
    """After the reader went away (``| head``): point stdout at devnull so that the final flush
    at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _read_for(model: ModelFile, path: str, encoding: str | None) -> Corpus:
    """TEXT encoded with the model's vocabulary; one clear error when it has other characters."""
    try:
        return load_corpus(path, encoding, vocab=model.vocab)
    except CorpusMismatchError as e:
        missing = getattr(e, "missing", ())
        shown = ", ".join(repr(c) for c in missing[:20]) + (
            " and more" if len(missing) > 20 else ""
        )
        raise CorpusMismatchError(
            f"{display_path(path)} has {len(missing):,} character(s) that are not in the "
            f"model's vocabulary ({shown}), so the model cannot score it."
        ) from None


def _eval(args: argparse.Namespace) -> int:
    if args.streams is not None and args.streams < 1:
        raise ConfigError(f"--streams must be at least 1, not {args.streams}.")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be 0 or more characters, not {args.warmup}.")
    model = load_model(args.model)
    corpus = _read_for(model, args.text, args.encoding)
    engine = _engine(args, model.config)
    progress = _EvalProgress() if sys.stderr.isatty() else None
    try:
        result = evaluate(model, corpus.ids, streams=args.streams, warmup=args.warmup,
                          progress=progress,
                          engine=None if engine.kind == "cpu" else engine)  # fmt: skip
    finally:
        if progress is not None:
            progress.clear()
    nats = result.nats
    how = f"{result.streams:,} stream{'s' * (result.streams != 1)}"
    if result.streams > 1:
        how += f", each warmed up on {result.warmup:,} characters"
    print(f"text:      {corpus.name} ({result.scored:,} characters scored, {how})")
    print(f"nats/char: {nats:.6f}")
    print(f"bits/char: {_bits(nats):.6f}")
    print(f"perplexity: {math.exp(nats):.4f}")
    return 0


def _passage(args: argparse.Namespace, model: ModelFile, limit: int | None = None) -> str:
    """The first --chars characters of TEXT (at most ``limit``), with a note when cut."""
    if args.chars < 2:
        raise ConfigError(f"--chars must be at least 2, not {args.chars}.")
    corpus = _read_for(model, args.text, args.encoding)
    n = min(args.chars, corpus.n_chars) if limit is None else min(args.chars, corpus.n_chars, limit)
    if n < corpus.n_chars:
        _note(f"reading the first {n:,} of {corpus.n_chars:,} characters of {corpus.name}.")
    return corpus.preview(n)


def _parse_unit(spec: str, model: ModelFile) -> tuple[int, int]:
    """LAYER:UNIT (0-based) checked against the model's shape."""
    cfg = model.config
    try:
        layer, unit = (int(x) for x in spec.split(":"))
    except ValueError:
        raise _UsageError(f"--unit takes LAYER:UNIT such as 0:12, not {spec!r}.") from None
    if not (0 <= layer < cfg.num_layers and 0 <= unit < cfg.hidden_size):
        raise _UsageError(
            f"--unit {spec} is outside the model: layers 0..{cfg.num_layers - 1}, "
            f"units 0..{cfg.hidden_size - 1}."
        )
    return layer, unit


def _check_page_path(out: str, *inputs: str) -> str:
    """Absolute path for --html; _UsageError if writing there could destroy an input or a model."""
    path = os.path.abspath(out)
    if os.path.isdir(path):
        raise _UsageError(f"--html {out} is a folder; give a file name such as page.html.")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise _UsageError(f"cannot write {out}: the folder {folder} does not exist.")
    if os.path.exists(path):
        for other in inputs:
            if os.path.exists(other) and os.path.samefile(path, other):
                raise _UsageError(f"--html {out} is one of the inputs; choose another file name.")
        with open(path, "rb") as f:
            if f.read(2) == b"PK":
                raise _UsageError(f"{out} is a model file; refusing to overwrite it.")
    return path


def _inspect(args: argparse.Namespace) -> int:
    page = _check_page_path(args.html, args.model, args.text) if args.html else None
    model = load_model(args.model)
    unit = _parse_unit(args.unit, model) if args.unit else None
    if args.spans < 0:
        raise ConfigError(f"--spans must be 0 or more, not {args.spans}.")
    text = _passage(args, model, max_passage(model) if unit is not None else None)
    a = analyse(model, text, 5, activations=unit is not None)
    print(f"text:      {args.text} ({len(text):,} characters, {len(text) - 1:,} predicted)")
    print(f"bits/char: {a.mean_bits:.4f}")
    print(f"nats/char: {a.mean_bits * math.log(2.0):.4f}")
    spans = _surprising_spans(a, args.spans)
    if spans:
        print("most surprising stretches (position, bits, text, what the model expected there):")
    for start, end, total in spans:
        worst = start + int(np.nanargmax(np.r_[0.0, a.bits][start:end]))
        expected = ", ".join(f"{_visible(ch)!r} {p:.0%}" for ch, p in a.top_chars(worst - 1)[:3])
        _write(
            sys.stdout,
            f"  {start:>7,}  {total:6.1f}  {text[start:end]!r}: at {_visible(text[worst])!r} "
            f"expected {expected}\n",
        )
    if page is not None:
        title = f"{os.path.basename(args.text)} read by {os.path.basename(args.model)}"
        write_atomic(page, _render_html(a, title, unit, args.kind))
        _note(f"wrote {args.html}")
    return 0


def _cells(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, not {args.top}.")
    model = load_model(args.model)
    text = _passage(args, model, max_passage(model))
    a = analyse(model, text)
    ranking = rank_units(a, detectors(text), args.kind, args.top)
    print(f"text:  {args.text} ({len(text):,} characters), units by |r| of {KINDS[args.kind]}")
    width = max(len(name) for name in DETECTORS)
    for name, scores in ranking.items():
        if not scores:
            row = "(constant in this text: nothing to correlate)"
        else:
            row = "  ".join(f"{s.layer}:{s.unit} {s.r:+.2f}" for s in scores)
        print(f"{name:<{width}}  {row}")
    return 0


class _EvalProgress:
    """``eval: 45% (900,000 of 2,000,000 characters), 0:00:30 elapsed, ETA 0:00:36`` on one
    rewritten stderr line, at most 10 times a second."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.drawn_at = 0.0
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.drawn_at < 0.1 and done < total:
            return
        self.drawn_at = now
        spent = now - self.start
        eta = spent * (total - done) / done if done else float("nan")
        line = (
            f"eval: {100 * done / max(total, 1):.0f}% ({done:,} of {total:,} characters), "
            f"{_hms(spent)} elapsed, ETA {_hms(eta)}"
        )
        _write(sys.stderr, "\r" + line + " " * max(0, self.width - len(line)))
        sys.stderr.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.width:
            _write(sys.stderr, "\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _file_version(path: str) -> int | str:
    """The format version stored in the (already validated) model file."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            return int(npz[K_VERSION].reshape(()))
    except Exception:  # validated just before; only a race with another writer gets here
        return "?"


def _info(args: argparse.Namespace) -> int:
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
            ("elapsed", _hms(t.elapsed_s)),
            ("best val loss", "-" if best is None else f"{best:.4f} nats/char "
             f"({_bits(best):.4f} bits/char)"),
        ]  # fmt: skip
        if t.rollbacks:  # self-healing (core.heal)
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
        _write(sys.stdout, f"{key + ':':<{width}} {value}\n")
    return 0


# ---------------------------------------------------------------------------------------------
# runs, sweep


def _fmt_time(seconds: float | None) -> str:
    return "-" if seconds is None else _hms(seconds)


def _runs(args: argparse.Namespace) -> int:
    action = args.action
    with RunStore.open(args.runs_db) as store:
        if action is None:
            runs = store.list_runs()
            if args.json:
                print(json.dumps([r.to_json() for r in runs], indent=1))
            elif not runs:
                _note(f"no runs recorded yet in {store.path}")
            else:
                _write(sys.stdout, _runs_table(runs) + "\n")
            return 0
        if action == "show":
            return _runs_show(store, args)
        if action == "rename":
            store.rename(args.id, args.name)
            _note(f"run {args.id} is now called {args.name.strip()!r}")
            return 0
        return _runs_rm(store, args)


def _runs_table(runs: list[Run]) -> str:
    rows = [["id", "name", "text", "model", "steps", "time", "best val", "chars/s", "started",
             "status"]]  # fmt: skip
    for r in runs:
        m = r.model
        rows.append(
            [
                str(r.id),
                r.name,
                r.text_name,
                f"{m.get('num_layers', '?')}x{m.get('hidden_size', '?')}",
                f"{r.steps:,}",
                _fmt_time(r.elapsed_s if r.ended is None else r.duration_s),
                _fmt_loss(r.best_val_loss),
                "-" if r.chars_per_sec is None else f"{r.chars_per_sec:,.0f}",
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)),
                r.status,
            ]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _runs_show(store: RunStore, args: argparse.Namespace) -> int:
    run = store.get(args.id)
    curves = store.curves([run.id])[run.id]
    if args.json:
        record = run.to_json()
        record["curves"] = {
            kind: {k: _json_list(getattr(c, k)) for k in ("step", "chars", "time", "loss")}
            for kind, c in (("train", curves.train), ("val", curves.val))
        }
        print(json.dumps(record, indent=1))
        return 0
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
    if run.ended is not None:
        when += f" to {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.ended))}"
    best = run.best_val_loss
    rows = [
        ("run", f"{run.id}: {run.name}"),
        ("status", run.status + (f" ({run.message})" if run.message else "")),
        ("text", f"{run.text_name} ({run.text_size or 0:,} bytes, sha256 "
         f"{run.text_sha256[:16]}...)"),
        ("when", when),
        ("steps", f"{run.steps:,} (from step {run.start_step:,}); {run.chars_seen:,} characters"),
        ("training time", _hms(run.elapsed_s)),
        ("chars/s", "-" if run.chars_per_sec is None else f"{run.chars_per_sec:,.0f}"),
        ("best val loss", "-" if best is None else f"{best:.4f} nats/char "
         f"({_bits(best):.4f} bits/char)"),
        ("final val loss", _fmt_loss(run.final_val_loss)),
        ("model", run.model_path or "-"),
        ("recorded by", f"{run.source} (pid {run.pid} on {run.host})"
         + (f", sweep {run.sweep}" if run.sweep else "")),
        ("curves", f"{len(curves.train):,} training points, {len(curves.val):,} validation"),
        ("model settings", " ".join(f"{k}={v}" for k, v in run.model.items())),
        ("train settings", " ".join(f"{k}={v}" for k, v in run.train.items())),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        _write(sys.stdout, f"{key + ':':<{width}} {value}\n")
    return 0


def _json_list(values: np.ndarray) -> list:
    """The values as a JSON-able list; unknown numbers (NaN: a wall time from before it was
    recorded) become null, which JSON has, rather than NaN, which it has not."""
    out = values.tolist()
    if values.dtype.kind == "f":
        out = [v if math.isfinite(v) else None for v in out]
    return out


def _runs_rm(store: RunStore, args: argparse.Namespace) -> int:
    runs = [store.get(i) for i in dict.fromkeys(args.id)]  # every id checked before any delete
    if not args.yes:
        if not sys.stdin.isatty():
            raise _UsageError("refusing to delete without confirmation; add --yes")
        names = ", ".join(f"{r.id} ({r.name})" for r in runs)
        extra = " and their model files" if args.with_model else ""
        try:
            answer = input(f"Delete run(s) {names}{extra}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            _note("nothing deleted")
            return 0
    for r in runs:
        removed = store.delete(r.id, with_model=args.with_model)
        kept = ""
        if r.model_path and not removed and os.path.exists(r.model_path):
            kept = f"; its model {r.model_path} is kept"
        gone = f" and its model {removed}" if removed else ""
        _note(f"deleted run {r.id} ({r.name}){gone}{kept}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise _UsageError(f"--jobs must be at least 1, not {args.jobs}.")
    budget = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    base_model, base_train = configs_from_args(args, SWEEP_DEFAULTS, **budget)
    axes = sweep.parse_grid(args.grid, grid_aliases())
    points = sweep.grid_points(axes, base_model, base_train)
    load_corpus(args.text, args.encoding)  # a bad text fails here, once, not in every point
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.abspath(args.out_dir or f"{Path(args.text).stem}-sweep-{stamp}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise _UsageError(f"--out-dir {args.out_dir} is a file; give a folder.")
    store = RunStore.open(args.runs_db)  # fails here, clearly, rather than in every point
    db = store.path
    store.close()
    spec = sweep.SweepSpec(
        text_path=os.path.abspath(args.text),
        encoding=args.encoding,
        base_model=base_model,
        base_train=base_train,
        out_dir=out_dir,
        runs_db=db,
        sweep_label=sweep.sweep_label(args.text),
    )
    jobs = min(args.jobs, len(points))
    cores = sweep.usable_cores()
    if jobs > cores:
        _warn(
            f"--jobs {jobs} on {cores} core(s): the points share cores, so each trains slower "
            "(with --minutes, fewer steps)."
        )
    if not args.quiet:
        threads = sweep.split_cores(jobs)
        _note(
            f"sweep of {len(points)} point(s) on {Path(args.text).name}, {jobs} at a time "
            f"({threads} BLAS thread(s) each); models in {out_dir}; runs recorded in {db} "
            f"as sweep '{spec.sweep_label}'"
        )
    results: list[sweep.PointResult] = []
    interrupted = False

    def started(point: sweep.SweepPoint) -> None:
        if not args.quiet:
            _note(f"[{point.index + 1}/{len(points)}] {point.label}: training")

    try:
        for result in sweep.run_sweep(spec, points, jobs=jobs, on_start=started):
            results.append(result)
            if not args.quiet:
                val = (
                    ""
                    if result.best_val_loss is None
                    else (f", best val {result.best_val_loss:.4f}")
                )
                _note(f"[{result.index + 1}/{len(points)}] {result.label}: {result.status}{val}")
    except KeyboardInterrupt:
        interrupted = True
    done = {r.index for r in results}
    results += [sweep.skipped_result(p) for p in points
                if p.index not in done]  # fmt: skip
    _write(sys.stdout, sweep.format_table(results, axes) + "\n")
    if interrupted:
        _note("interrupted; the points that finished are kept and recorded")
        return EXIT_INTERRUPTED
    if any(r.status in ("failed", "diverged") for r in results):
        return EXIT_FAILURE
    return 0


# ---------------------------------------------------------------------------------------------
# main

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _train,
    "sample": _sample,
    "eval": _eval,
    "info": _info,
    "inspect": _inspect,
    "cells": _cells,
    "runs": _runs,
    "sweep": _sweep,
    "devices": lambda args: _devices(),
}


def _devices() -> int:
    """``charlstm devices``: what ``core.backend.list_devices`` found, one fact a line."""
    for line in list_devices().lines():
        _write(sys.stdout, line + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``charlstm`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        with one_line_warnings(_warn):  # a NumPy RuntimeWarning as one line, not two
            return _COMMANDS[args.command](args)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except (_UsageError, ConfigError) as e:
        _err(str(e))
        return EXIT_USAGE
    except DecodeError as e:  # the engine's message names encodings; say how to pass one here
        _err(f"{e} Give it with --encoding NAME.")
        return EXIT_FAILURE
    except CharLSTMError as e:
        _err(str(e))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _write(sys.stderr, "\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except MemoryError:
        _err("out of memory. Use a smaller model, batch size or text.")
        return EXIT_FAILURE
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        _err(f"{e.strerror or e}{where}.")
        return EXIT_FAILURE
    except Exception as e:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        _err(
            f"unexpected {type(e).__name__}: {e}. This is a bug; re-run with {DEBUG_ENV}=1 to "
            "see the traceback."
        )
        return EXIT_FAILURE
