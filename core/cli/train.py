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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..engine.model import count_params
from ..errors import (
    CharLSTMError,
    CorpusMismatchError,
    DecodeError,
    DeviceLostError,
    GpuMemoryError,
    ModelFileError,
    ModelFileLocked,
    TrainingDiverged,
)
from ..events import Event, TrainSummary
from ..files import writer
from ..files.modelfile import ModelLock, load_model
from ..files.text import display_path, inert, load_corpus, recorded_encoding
from ..runs import RunRecorder, default_db_path
from ..training.policy import plan_resume, same_text
from ..training.trainer import Trainer
from .common import DEFAULT_MINUTES, EXIT_FAILURE, engine_for
from .console import PROG, Progress, StopSignals, UsageError, count, hms, note, signal_name, warn
from .console import error as print_error
from .console import stop_message as _stop_message
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


def _new_run(args: argparse.Namespace) -> tuple[Trainer, str, str]:
    """A Trainer for a new model; returns (trainer, output path, description of the run)."""
    if args.text is None:
        raise UsageError("give the training text: charlstm train TEXT (or --resume MODEL TEXT)")
    duration = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    if all(v is None for v in duration.values()):
        duration["minutes"] = DEFAULT_MINUTES
    mc, tc = configs_from_args(args, **duration)
    out = _check_paths(args)
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
    out = _check_paths(args)
    duration = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    asked = st.config.replace(**given(args, TrainConfig), **duration)
    corpus = _resume_corpus(args, st.corpus, mf.vocab)
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


def _resume_corpus(args: argparse.Namespace, fingerprint: dict, vocab: Any) -> Any:
    """The text to continue on, in --encoding, else in the encoding the checkpoint recorded if
    it is that same text (``recorded_encoding``), else UTF-8; a refusal names the encoding
    used when the model's last text had another."""
    encoding = args.encoding or recorded_encoding(args.text, fingerprint)
    used = encoding or "utf-8"
    last = fingerprint.get("encoding")
    try:
        return load_corpus(args.text, encoding, vocab=vocab)
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
    trainer, out, what = _resume_run(args) if args.resume else _new_run(args)
    # One writer per model file for the whole run: a second run on the same --out is refused.
    with ModelLock(out):
        return _train_locked(args, trainer, out, what)


def _train_locked(args: argparse.Namespace, trainer: Trainer, out: str, what: str) -> int:
    log = None
    if args.log_jsonl:
        log = writer.open_log(args.log_jsonl, append=bool(args.resume))
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
