"""``charlstm train``: train a new model, or continue a checkpoint (``--resume``).

Parse, build one training session (charlstm_core.training.session: the one a sweep's points and
the app's worker run), print its events, and exit with a status from its summary. A new run
turns the options into ``ModelConfig``/``TrainConfig``; a continued one takes the checkpoint's
settings, overrides the ones given and plans the run with
``charlstm_core.training.policy.plan_resume`` (the app's Continue uses the same rule: --steps and
--epochs are totals for the model's life, --minutes is for this session). The session records the
run, saves the model, stops after the current step on SIGINT, SIGTERM or SIGHUP (exit 128 + the
signal), keeps the last good weights after a divergence (exit 1), and saves to the autosave
folder when ``--out`` cannot be written (exit 1, the file named).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..config import ModelConfig, TrainConfig
from ..engine.model import count_params
from ..errors import CharLSTMError, ModelFileError
from ..files.modelfile import load_model, save_target
from ..files.text import display_path
from ..training.policy import plan_resume, same_text
from ..training.session import (
    INTERRUPTED_SAVE,
    Session,
    SessionRequest,
    SessionSummary,
    drive,
    open_text,
)
from .common import DEFAULT_MINUTES, EXIT_FAILURE
from .console import (
    PROG,
    Progress,
    UsageError,
    count,
    exit_status,
    hms,
    note,
    signal_name,
    stop_message,
    warn,
)
from .console import error as print_error
from .options import configs_from_args, given, given_flags

# ---------------------------------------------------------------------------------- paths


def _check_out_path(out: str, text: str | None) -> str:
    """Absolute path to save to; UsageError if it cannot or should not be written.

    The rule for special files is ``charlstm_core.files.modelfile.save_target``'s, the app's too:
    devices,
    FIFOs and folders are refused, a symlink is saved through to its target.
    """
    path = os.path.abspath(out)
    shown = display_path(out)
    if text is not None and _same_file(path, text):
        raise UsageError(f"--out {shown} is the training text itself; choose another file name.")
    try:
        target = save_target(path)
    except ModelFileError as e:
        raise UsageError(f"--out: {e}") from None
    folder = os.path.dirname(target)
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot save to {shown}: the folder {folder} is not writable.")
    if os.path.isfile(target):
        with open(target, "rb") as f:
            if f.read(2) != b"PK":
                raise UsageError(
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
    """UsageError if the JSON-lines log would be written over the text or a model file. A
    stream (a FIFO, /dev/stdout) is fine."""
    try:
        mode = os.stat(log).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        return
    for what, other in (("the training text", text), ("the model file", out), ("--resume", model)):
        if other is not None and _same_file(log, other):
            raise UsageError(
                f"--log-jsonl {display_path(log)} is {what}; writing the log would destroy it. "
                "Choose another file name."
            )


# ---------------------------------------------------------------------------------- planning

Describe = Callable[[Session], str]  # the line printed when training starts


def _new_request(args: argparse.Namespace) -> tuple[SessionRequest, Describe]:
    """The session of a new model, and what its first line says."""
    if args.text is None:
        raise UsageError("give the training text: charlstm train TEXT (or --resume MODEL TEXT)")
    duration = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    if all(v is None for v in duration.values()):
        duration["minutes"] = DEFAULT_MINUTES
    mc, tc = configs_from_args(args, **duration)
    out = _check_out_path(args.out or Path(args.text).stem + ".npz", args.text)
    request = _request(
        args, text=args.text, encoding=args.encoding, model_config=mc, train_config=tc, out=out
    )

    def what(session: Session) -> str:
        trainer, corpus = session.trainer, session.corpus
        mc = trainer.model_config
        if tc.minutes is not None:
            length = count(tc.minutes, "minute")
        else:
            length = f"{trainer.total_steps:,} steps"
            if tc.epochs is not None:
                length += f" ({tc.epochs:g} epochs)"
        layers = f"{mc.num_layers} layer{'s' if mc.num_layers > 1 else ''}"
        return (
            f"training {layers} x {mc.hidden_size} units ({count_params(mc):,} parameters, "
            f"vocabulary {mc.vocab_size}) on {corpus.name} ({corpus.n_chars:,} characters) "
            f"for {length} on {trainer.device_label}; saving to {out}"
        )

    return request, what


def _resume_request(args: argparse.Namespace) -> tuple[SessionRequest, Describe]:
    """The session continuing ``--resume``, and what its first line says."""
    arch = given_flags(args, ModelConfig)
    if arch:
        raise UsageError(
            f"{', '.join(arch)} cannot be changed when continuing a model; its architecture "
            "comes from the checkpoint."
        )
    if args.text is None:
        raise UsageError(
            "give the text to continue on: charlstm train --resume MODEL TEXT "
            "(checkpoints record the text's fingerprint, not its path)"
        )
    mf = load_model(args.resume)
    st = mf.train
    if st is None:
        raise ModelFileError(
            f"{args.resume} holds weights only, without the training state needed to continue "
            "it. Train a new model instead."
        )
    out = _check_out_path(args.out or args.resume, args.text)
    duration = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    asked = st.config.replace(**given(args, TrainConfig), **duration)
    corpus = open_text(args.text, args.encoding, resume=mf)  # its length plans the run
    plan = plan_resume(st.step, st.total_steps, asked, corpus.n_chars)
    if plan.nothing_left:
        if all(v is None for v in duration.values()):
            raise UsageError(
                f"{args.resume} has completed its planned {st.total_steps:,} steps; say how "
                "much longer to train with --steps or --epochs (totals for the model's life, "
                f"e.g. --steps {st.step + 1000}) or --minutes (this session)."
            )
        raise UsageError(
            f"{args.resume} has already trained {st.step:,} steps, and --steps and --epochs "
            f"are totals for the model's life (this one ends at step {plan.target:,}): "
            f"nothing left to train. Give more, e.g. --steps {st.step + 1000}."
        )
    if not same_text(st.corpus, corpus.sha256):
        warn(
            f"{corpus.name} is not the text {args.resume} was trained on "
            f"({st.corpus.get('name', 'unknown')}); continuing on it, its streams start over."
        )
    request = _request(args, text=corpus, resume=mf, train_config=plan.config, out=out)
    if plan.more is None:
        length = count(args.minutes, "more minute")
    elif all(v is None for v in duration.values()):
        length = "the rest of its planned run"
    else:
        length = count(plan.more, "more step")
        if args.epochs is not None:
            length += f" ({args.epochs:g} epochs in total)"

    def what(session: Session) -> str:
        trainer = session.trainer
        line = (
            f"continuing {args.resume} from step {st.step:,} on {corpus.name} for {length} "
            f"on {trainer.device_label}"
        )
        if plan.target is not None:
            line += f" (to step {trainer.total_steps:,})"
        return line + f"; saving to {out}"

    return request, what


def _request(args: argparse.Namespace, **what: Any) -> SessionRequest:
    """The options every ``charlstm train`` session shares, with ``what`` it trains."""
    return SessionRequest(
        device=args.device,  # resolved first: a GPU that is missing fails before the text is read
        record=not args.no_record,
        runs_db=args.runs_db,
        run_name=args.name,
        source="cli",
        signals=True,  # SIGINT, SIGTERM, SIGHUP: stop after this step, save, exit 128 + signal
        **what,
    )


# ---------------------------------------------------------------------------------- the run


def train(args: argparse.Namespace) -> int:
    """``charlstm train``."""
    if args.log_jsonl:  # before anything is read or written
        out_arg = args.out or args.resume or (Path(args.text).stem + ".npz" if args.text else "")
        _check_log_path(args.log_jsonl, args.text, os.path.abspath(out_arg), args.resume)
    request, what = _resume_request(args) if args.resume else _new_request(args)
    log = _open_log(args)
    try:
        progress = Progress(request.train_config, args.quiet, log)
        console = _Console(args, progress, what)
        session = Session(request, on_signal=console.stop_signal)
        console.session = session
        summary = drive(session.run(), console.show)
        return console.report(summary)
    finally:
        if log is not None:
            log.close()


def _open_log(args: argparse.Namespace) -> TextIO | None:
    if not args.log_jsonl:
        return None
    try:
        return open(args.log_jsonl, "a" if args.resume else "w", encoding="utf-8")
    except OSError as e:
        raise CharLSTMError(f"Cannot write the log {args.log_jsonl}: {e.strerror or e}.") from None


class _Console:
    """Shows a session's events on stderr (and the JSON-lines log) and its end as an exit
    status. Once stderr (or the log) cannot be written any more, say after a hang-up closed the
    terminal, it shows nothing: the run goes on, saves and ends with its status all the same."""

    def __init__(self, args: argparse.Namespace, progress: Progress, what: Describe) -> None:
        self.args, self.progress, self.what = args, progress, what
        self.session: Any = None
        self.warned: set[str] = set()
        self.gone = False  # the terminal (or the log) cannot be written any more

    def stop_signal(self, signum: int) -> None:
        """The first stop signal (a signal handler: a short write, nothing else)."""
        sys.stderr.write(stop_message(signum))
        sys.stderr.flush()

    def show(self, event: Any) -> None:
        if self.gone:
            return
        try:
            kind = event.kind
            if kind == "started" and not self.args.quiet:
                note(self.what(self.session))
                _warn_unseen_validation(self.session.trainer)
            elif kind == "recording_problem":
                self._warn(event.message)
            elif kind == "saved_elsewhere":
                self._warn(f"{event.reason} The model is saved to {event.path} instead.")
            self.progress(event)
        except OSError:
            self.gone = True

    def _warn(self, message: str) -> None:
        if message not in self.warned:
            self.warned.add(message)
            self.progress.clear()
            warn(message)

    def report(self, summary: SessionSummary) -> int:
        """Say how the run ended (unless the terminal is gone); the exit status."""
        if summary.ended == "crashed" and not isinstance(summary.error, CharLSTMError):
            raise summary.error  # a bug or out of memory: the command line's last resort
        if not self.gone:
            with contextlib.suppress(OSError):  # the terminal may go away meanwhile
                self._say_end(summary)
        return self._status(summary)

    @staticmethod
    def _status(summary: SessionSummary) -> int:
        """1: diverged, failed, or not saved where asked; 128 + the signal: stopped by one
        (130: a KeyboardInterrupt); 0: trained and saved to --out."""
        unsaved = summary.model_path is None and summary.save_problem not in (
            None,
            INTERRUPTED_SAVE,
        )
        if summary.ended in ("crashed", "diverged") or unsaved:
            return EXIT_FAILURE
        if summary.signal is not None or summary.quit_sooner:
            return exit_status(summary.signal or 2)
        return EXIT_FAILURE if summary.fell_back else 0

    def _say_end(self, summary: SessionSummary) -> None:
        progress, session = self.progress, self.session
        out = session.request.out
        if summary.ended == "crashed":  # a GPU failure, a model that could not be saved
            progress.clear()
            print_error(str(summary.error))
            return
        if summary.ended == "diverged":
            progress.clear()
            if progress.log is not None:
                record = {"event": "diverged", "step": summary.steps, "path": summary.model_path}
                progress.log_record(record)
            if summary.model_path is not None:
                print_error(f"{summary.error} They are saved in {summary.model_path}.")
            else:
                print_error(f"{summary.error} They could not be saved: {summary.save_problem}")
            return
        if summary.quit_sooner:
            progress.clear()
        else:
            progress.finish()
        if progress.log is not None and summary.train is not None:
            progress.log_record({"event": "summary", **dataclasses.asdict(summary.train)})
        if summary.record_problem is not None:
            self._warn(summary.record_problem)
        if summary.model_path is None:
            if summary.save_problem == INTERRUPTED_SAVE:
                note(f"interrupted again while saving; {out} keeps its previous contents.")
            elif summary.save_problem is not None:
                print_error(f"the model could not be saved: {summary.save_problem}")
            else:
                note(f"no step was trained; {out} is unchanged.")
            return
        if summary.fell_back:
            self._fell_back(summary)
        if summary.signal is not None or summary.quit_sooner:
            self._interrupted(summary)
            return
        best = summary.best_val_loss
        val = "" if best is None else f", best validation loss {best:.4f} nats/char"
        if summary.rollbacks:
            n = summary.rollbacks
            scale = session.trainer.lr_scale
            val += f", healed {n} blow-up{'s' * (n != 1)} (learning rate x{scale:.3g})"
        run = "" if summary.run_id is None else f" (run {summary.run_id})"
        took, saved = hms(summary.elapsed_s), summary.model_path
        note(f"trained to step {summary.steps:,} in {took}{val}; saved to {saved}{run}")

    def _fell_back(self, summary: SessionSummary) -> None:
        out = self.session.request.out
        print_error(
            f"{display_path(out)} could not be written ({summary.save_problem}); the model is "
            f"saved to {summary.model_path} instead, and {display_path(out)} keeps its previous "
            "contents."
        )

    def _interrupted(self, summary: SessionSummary) -> None:
        signum, path = summary.signal, summary.model_path
        how = "interrupted" if signum in (None, 2) else f"stopped by {signal_name(signum)}"
        progress = self.progress
        try:  # after a hang-up (SIGHUP) the terminal may be gone: the save is what matters
            if progress.log is not None:
                record: dict[str, Any] = {"event": "interrupted", "step": summary.steps}
                record["path"] = path
                if signum is not None:
                    record["signal"] = signal_name(signum)
                progress.log_record(record)
            corpus = self.session.corpus
            text = display_path(corpus.path) if corpus is not None and corpus.path else "TEXT"
            note(
                f"{how} at step {summary.steps:,}; checkpoint saved to {display_path(path)}. "
                f"Continue with: {PROG} train --resume {display_path(path)} {text}"
            )
        except (OSError, ValueError):
            pass


def _warn_unseen_validation(trainer: Any) -> None:
    """Say when the validation part holds characters the training part never shows."""
    from ..training.plan import unseen_in_validation, unseen_message

    tc, corpus = trainer.train_config, trainer.corpus
    unseen = unseen_in_validation(corpus.ids, corpus.vocab, tc.val_fraction, tc.val_split)
    if unseen.distinct:
        how = " Use --val-split blocks." if tc.val_split == "last" else ""
        warn(unseen_message(unseen, tc.val_split) + how)
