"""The ``charlstm`` command line: the parser and the dispatch to a command.

Each command lives in its own module and is a function of the parsed arguments returning the exit
status: ``charlstm_core.cli.train`` (train, continue), ``charlstm_core.cli.model`` (sample, eval,
info), ``charlstm_core.cli.inspect`` (inspect, cells) and ``charlstm_core.cli.runs`` (runs, sweep,
devices). The settings' options are generated from the config fields
(``charlstm_core.cli.options``);
messages, progress and signal handling are ``charlstm_core.cli.console``'s. ``main`` maps every
expected
problem, by its type, to one line on stderr: exit 2 for a usage or settings mistake, 1 for a
failure, 128 + the signal number after Ctrl-C, SIGTERM or SIGHUP (which stop a run and save it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..config import GenerationConfig, ModelConfig, TrainConfig
from ..engine.devices import DEVICE_CHOICES, parse_choice
from ..errors import CharLSTMError, ConfigError, DecodeError
from ..insight.inspect import KINDS
from ..runs import DB_NAME, HOME_ENV
from ..sample import EVAL_STREAMS_MAX, EVAL_WARMUP
from .common import (
    DEBUG_ENV,
    DEFAULT_MINUTES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    SWEEP_DEFAULTS,
)
from .console import PROG, UsageError, error, one_line_warnings, silence_stdout, warn, write
from .options import add_config_options, options

_RUNS_DB_DEFAULT_HELP = f"${HOME_ENV}/{DB_NAME}, else the user's data folder"

# sample's options for the text it writes (GenerationConfig; its copies_min goes with --copies)
GENERATION_OPTIONS = tuple(n for n in options(GenerationConfig) if n != "copies_min")
_MODEL_HELP = (
    "model file (.npz); default: the newest model in the run store (the newest run that "
    "recorded a model file, as 'charlstm runs' lists them), named on stderr"
)
_TEXT_HELP = (
    "text file; default: the validation part of the model's own text (the file its checkpoint "
    "records, split as the model was trained), named on stderr"
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (via UsageError) instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


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


def _add_model(command: Any) -> None:
    """MODEL, a file or a run's name in the runs database (hence --runs-db)."""
    command.add_argument("model", metavar="MODEL", nargs="?", help=_MODEL_HELP)
    _add_runs_db(command)


def _add_model_over_text(command: Any, chars: int) -> None:
    """The arguments of a command that runs a model over the start of a text (inspect, cells)."""
    _add_model(command)
    command.add_argument("text", metavar="TEXT", nargs="?", help=_TEXT_HELP)
    command.add_argument("--encoding", help="encoding of TEXT (default: UTF-8)")
    command.add_argument(
        "--chars",
        type=int,
        default=chars,
        metavar="N",
        help="read only the first N characters of TEXT (default: %(default)s)",
    )


def _add_device(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    """``--device`` (cpu, auto, gpu, gpu:N), checked by ``_device_choice``."""
    parser.add_argument(
        "--device",
        default=default,
        type=_device_choice,
        metavar="{" + ",".join(DEVICE_CHOICES) + "}",
        help=help,
    )


def _add_kind(command: Any, when: str = "") -> None:
    command.add_argument(
        "--kind",
        choices=tuple(KINDS),
        default="c",
        help=f"{when}c = the cell value tanh(c), h = the hidden value (default: c)",
    )


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
        "--steps and --epochs are then totals for the model's life, as in the app (a model at "
        "step 1000 given --steps 3000 trains 2000 more), --minutes is for this session; with "
        "none of them it finishes the run it was saved from",
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
        "--steps", type=int, metavar="N", help="optimizer steps in total (with --resume too)"
    )
    how_long.add_argument(
        "--epochs",
        type=float,
        metavar="E",
        help="passes over the text in total (with --resume too; counted in this text's batches)",
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
    _add_model(s)
    add_config_options(
        s.add_argument_group("generation"), GenerationConfig, only=GENERATION_OPTIONS
    )
    copies = s.add_argument_group("memorisation")
    copies.add_argument(
        "--copies",
        metavar="TEXT",
        help="report on stderr how much of the generated text occurs verbatim in TEXT "
        "(the copied fraction and the longest copy); a copy must also say as much as N ordinary "
        "characters of TEXT (its bits under TEXT's character frequencies, a run of one "
        "character counted once), so indentation does not count",
    )
    add_config_options(copies, GenerationConfig, only=("copies_min",))
    copies.add_argument("--encoding", help="encoding of the --copies TEXT (default: UTF-8)")

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
    _add_model_over_text(n, chars=10_000)
    n.add_argument(
        "--spans", type=int, default=10, metavar="N", help="surprising stretches to list"
    )
    n.add_argument("--html", metavar="FILE", help="write the coloured page to FILE")
    n.add_argument(
        "--unit",
        metavar="LAYER:UNIT",
        help="colour the page by this unit instead of by surprise: layers count from 1 (the "
        "layer nearest the text), units from 0, as 'charlstm cells' and the app show them, "
        "e.g. 1:37",
    )
    _add_kind(n, "with --unit: ")

    c = sub.add_parser(
        "cells",
        help="find units that track quotes, brackets, line position...",
        description="Run MODEL over TEXT and print, for each simple detector (inside quotes, "
        "bracket depth, characters since the newline, ...), the units whose activation "
        "correlates best with it, with Pearson's r. Units are written LAYER:UNIT, layers "
        "counting from 1 (the layer nearest the text) and units from 0, as 'inspect --unit' "
        "takes them.",
    )
    _add_model_over_text(c, chars=5_000)
    c.add_argument("--top", type=int, default=5, metavar="N", help="units per detector")
    _add_kind(c)

    i = sub.add_parser(
        "info",
        help="describe a model file",
        description="Print a model's architecture, size, vocabulary and training record.",
    )
    _add_model(i)
    sub.add_parser(
        "devices",
        help="list the devices training can run on",
        description="List the CPU and each usable NVIDIA GPU (CuPy version, CUDA runtime and "
        "driver, name and memory), or say why no GPU is usable.",
    )
    for sp in (t, s, e):
        _add_device(
            sp,
            "auto",
            "where to run: the GPU when one is usable (auto), the CPU, or a GPU (gpu, gpu:N); see "
            "'charlstm devices' (default: auto)",
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
    how_long = w.add_argument_group("budget of each point (one of --steps, --epochs, --minutes)")
    budget = how_long.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, metavar="N", help="optimizer steps")
    budget.add_argument("--epochs", type=float, metavar="E", help="passes over the text")
    budget.add_argument("--minutes", type=float, metavar="M", help="minutes of training")
    how_long.add_argument(
        "--as-steps",
        action="store_true",
        help="with --minutes: first time each point on this machine (one at a time, real steps "
        "with their validations and samples, as a run alone would train) and then train it for "
        "the steps that fit in M minutes, so its result does not depend on the machine's load "
        "or on --jobs",
    )
    w.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="points trained at once, in separate processes sharing the cores (default: 1)",
    )
    w.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get("DASK_SCHEDULER_ADDRESS") or None,
        help="train the points on the Dask cluster of this scheduler (tcp://HOST:8786, or "
        "tls://...), each point one task on a worker; needs pip install 'charlstm[cluster]' "
        "here and on the workers (default: $DASK_SCHEDULER_ADDRESS; '' trains here). See "
        "docs/cluster.md",
    )
    _add_device(
        w,
        "cpu",
        "where each point trains (default: cpu); with --scheduler, gpu asks for workers started "
        "with --resources GPU=1",
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
# main


def _command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The function ``name`` of ``charlstm_core.cli.<module>``, imported when the command runs, so
    that ``charlstm runs`` need not load the trainer."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f".{module}", __package__), name)(args)

    return run


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _command("train", "train"),
    "sample": _command("model", "sample"),
    "eval": _command("model", "eval_"),
    "info": _command("model", "info"),
    "inspect": _command("inspect", "inspect"),
    "cells": _command("inspect", "cells"),
    "runs": _command("runs", "runs"),
    "sweep": _command("runs", "sweep"),
    "devices": _command("runs", "devices"),
}


def main(argv: list[str] | None = None) -> int:
    """Run ``charlstm`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        with one_line_warnings(warn):  # a NumPy RuntimeWarning as one line, not two
            return _COMMANDS[args.command](args)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except (UsageError, ConfigError) as e:
        error(str(e))
        return EXIT_USAGE
    except DecodeError as e:  # the engine's message names encodings; say how to pass one here
        error(f"{e} Give it with --encoding NAME.")
        return EXIT_FAILURE
    except CharLSTMError as e:
        error(str(e))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        write(sys.stderr, "\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        silence_stdout()
        return 0
    except MemoryError:
        error("out of memory. Use a smaller model, batch size or text.")
        return EXIT_FAILURE
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        error(f"{e.strerror or e}{where}.")
        return EXIT_FAILURE
    except Exception as e:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        error(
            f"unexpected {type(e).__name__}: {e}. This is a bug; re-run with {DEBUG_ENV}=1 to "
            "see the traceback."
        )
        return EXIT_FAILURE
