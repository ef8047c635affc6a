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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..config import ModelConfig, TrainConfig
from ..engine.model import count_params
from ..errors import (
    CharLSTMError,
    CorpusMismatchError,
    DecodeError,
    ModelFileError,
    ModelFileLocked,
)
from ..files import writer
from ..files.modelfile import load_model
from ..files.text import display_path, inert, recorded_encoding
from ..runs import default_db_path
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


def _check_paths(args: argparse.Namespace) -> str | None:
    """The model file to save to (absolute), once every file the run will write (--out,
    --log-jsonl, --runs-db) is checked together by the one guarded writer's rule
    (``charlstm_core.files.writer.check_outputs``, the app's too), before anything is read or
    written: each only over a file of its own kind or a new name, none over the training text
    or another of them. UsageError says why not; a model held by a running process is
    ModelFileLocked. None when there is no text to name the model after (an error follows)."""
    out = args.out or args.resume or (Path(args.text).stem + ".npz" if args.text else None)
    outputs = [
        writer.Output("--out" if args.out or not args.resume else "--resume", out,
                      writer.Kind.MODEL),
        writer.Output("--log-jsonl", args.log_jsonl, writer.Kind.LOG),
        writer.Output("--runs-db", None if args.no_record else args.runs_db,
                      writer.Kind.RUN_STORE),
    ]  # fmt: skip
    inputs = {"the training text itself": args.text}
    if not args.runs_db:  # the default store: never written over (if damaged, a warning says so)
        inputs["the run store (runs.sqlite)"] = str(default_db_path())
    try:
        writer.check_outputs(outputs, inputs)
    except ModelFileLocked:
        raise
    except CharLSTMError as e:
        raise UsageError(str(e)) from None
    return None if out is None else os.path.abspath(out)


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
    out = _check_paths(args)
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
    out = _check_paths(args)
    duration = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    asked = st.config.replace(**given(args, TrainConfig), **duration)
    corpus = _resume_corpus(args, mf)  # its length plans the run
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


def _resume_corpus(args: argparse.Namespace, mf: Any) -> Any:
    """The text to continue on, in --encoding, else in the encoding the checkpoint recorded if
    it is that same text (``recorded_encoding``), else UTF-8; a refusal names the encoding
    used when the model's last text had another."""
    fingerprint = mf.train.corpus
    used = args.encoding or recorded_encoding(args.text, fingerprint) or "utf-8"
    last = fingerprint.get("encoding")
    try:
        return open_text(args.text, args.encoding, resume=mf)
    except (DecodeError, CorpusMismatchError) as e:
        if args.encoding or not isinstance(last, str) or last.lower() == used.lower():
            raise
        name = inert(str(fingerprint.get("name", "its last text")))
        hint = (
            f" It was read as {used}: {display_path(args.text)} is not the text the model was "
            f"last trained on ({name}, {last}). If it is {last} too, add --encoding {last}."
        )
        raise type(e)(str(e) + hint, **_error_fields(e)) from None


def _error_fields(e: CharLSTMError) -> dict[str, Any]:
    if isinstance(e, DecodeError):
        return {"offset": e.offset, "encoding": e.encoding}
    return {"missing": getattr(e, "missing", ())}


# ---------------------------------------------------------------------------------- the run


def train(args: argparse.Namespace) -> int:
    """``charlstm train``."""
    _check_paths(args)  # before anything is read or written
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
    return writer.open_log(args.log_jsonl, append=bool(args.resume))


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
            progress.finish(summary)
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
        took, saved = hms(summary.duration_s), summary.model_path
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
