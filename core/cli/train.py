"""``charlstm train``: train a new model, or continue a checkpoint (``--resume``).

A new run turns the options into ``ModelConfig``/``TrainConfig``; a continued one takes the
checkpoint's settings, overrides the ones given and plans the run with
``charlstm_core.training.policy.plan_resume`` (the app's Continue uses the same rule: --steps and
--epochs
are totals for the model's life, --minutes is for this session). The run prints its events
(``charlstm_core.cli.console.Progress``), is recorded in the runs database, and saves the model at
the
end, after a stop signal (exit 128 + the signal) and after a divergence (the last good weights, exit
1).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..config import ModelConfig, TrainConfig
from ..engine.model import count_params
from ..errors import (
    CharLSTMError,
    DeviceLostError,
    GpuMemoryError,
    ModelFileError,
    TrainingDiverged,
)
from ..events import Event, TrainSummary
from ..files.modelfile import ModelLock, load_model, save_target
from ..files.text import display_path, load_corpus
from ..runs import RunRecorder
from ..training.policy import plan_resume, same_text
from ..training.trainer import Trainer
from .common import DEFAULT_MINUTES, EXIT_FAILURE, engine_for
from .console import PROG, Progress, StopSignals, UsageError, count, hms, note, signal_name, warn
from .console import error as print_error
from .console import stop_message as _stop_message
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


def _new_run(args: argparse.Namespace) -> tuple[Trainer, str, str]:
    """A Trainer for a new model; returns (trainer, output path, description of the run)."""
    if args.text is None:
        raise UsageError("give the training text: charlstm train TEXT (or --resume MODEL TEXT)")
    duration = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    if all(v is None for v in duration.values()):
        duration["minutes"] = DEFAULT_MINUTES
    mc, tc = configs_from_args(args, **duration)
    out = _check_out_path(args.out or Path(args.text).stem + ".npz", args.text)
    engine = engine_for(args, mc)  # before reading the text: a GPU that is missing fails at once
    corpus = load_corpus(args.text, args.encoding)
    mc = dataclasses.replace(mc, vocab_size=corpus.vocab.size)
    trainer = Trainer(corpus, mc, tc, checkpoint_path=out, device=engine)
    if tc.minutes is not None:
        length = count(tc.minutes, "minute")
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
    encoding = args.encoding or st.corpus.get("encoding")
    corpus = load_corpus(args.text, encoding, vocab=mf.vocab)
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
    engine = engine_for(args, mf.config)
    trainer = Trainer(corpus, mf.config, plan.config, resume=mf, checkpoint_path=out, device=engine)
    if plan.more is None:
        length = count(args.minutes, "more minute")
    elif all(v is None for v in duration.values()):
        length = "the rest of its planned run"
    else:
        length = count(plan.more, "more step")
        if args.epochs is not None:
            length += f" ({args.epochs:g} epochs in total)"
    what = (
        f"continuing {args.resume} from step {st.step:,} on {corpus.name} for {length} "
        f"on {trainer.device_label}"
    )
    if plan.target is not None:
        what += f" (to step {trainer.total_steps:,})"
    what += f"; saving to {out}"
    return trainer, out, what


# ---------------------------------------------------------------------------------- the run


def train(args: argparse.Namespace) -> int:
    """``charlstm train``."""
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
            note(what)
            _warn_unseen_validation(trainer)
        progress = Progress(trainer, args.quiet, log)
        if not args.no_record:

            def on_warning(message: str) -> None:
                progress.clear()
                warn(message)

            recorder = RunRecorder.for_trainer(
                args.runs_db, trainer, model_path=out, name=args.name, on_warning=on_warning
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
    from ..training.plan import unseen_in_validation, unseen_message

    tc, corpus = trainer.train_config, trainer.corpus
    unseen = unseen_in_validation(corpus.ids, corpus.vocab, tc.val_fraction, tc.val_split)
    if unseen.distinct:
        how = " Use --val-split blocks." if tc.val_split == "last" else ""
        warn(unseen_message(unseen, tc.val_split) + how)


def _drive(trainer: Trainer, on_event: Callable[[Event], None]) -> TrainSummary:
    """Pull every event of ``trainer.run()``, handing each to ``on_event``; returns the summary."""
    gen = trainer.run()
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        on_event(event)


def _run_training(
    trainer: Trainer, out: str, progress: Progress, recorder: RunRecorder | None = None
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
                note(f"interrupted again while saving; {out} keeps its previous contents.")
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
            print_error(f"{e} They are saved in {path}.")
            return EXIT_FAILURE
        except (GpuMemoryError, DeviceLostError) as e:  # the trainer kept or saved the model
            progress.clear()
            if recorder is not None:
                recorder.finish(error=e)
            print_error(str(e))
            return EXIT_FAILURE
        progress.finish()
        if progress.log is not None:
            progress.log_record({"event": "summary", **dataclasses.asdict(summary)})
        try:
            path = summary.checkpoint_path or trainer.save(out)
        except KeyboardInterrupt:
            note(f"interrupted again while saving; {out} keeps its previous contents.")
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
    took = hms(summary.elapsed_s)
    note(f"trained to step {summary.steps:,} in {took}{val}; saved to {path}{run}")
    return 0


def _report_interrupt(
    progress: Progress, trainer: Trainer, path: str, signum: int | None = None
) -> None:
    how = "interrupted" if signum in (None, 2) else f"stopped by {signal_name(signum)}"
    try:  # after a hang-up (SIGHUP) the terminal may be gone: the save is what matters
        if progress.log is not None:
            record = {"event": "interrupted", "step": trainer.step, "path": path}
            if signum is not None:
                record["signal"] = signal_name(signum)
            progress.log_record(record)
        text = display_path(trainer.corpus.path) if trainer.corpus.path else "TEXT"
        note(
            f"{how} at step {trainer.step:,}; checkpoint saved to {display_path(path)}. "
            f"Continue with: {PROG} train --resume {display_path(path)} {text}"
        )
    except (OSError, ValueError):
        pass
