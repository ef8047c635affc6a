"""``charlstm runs``, ``sweep`` and ``devices``: the run store, grids of runs, and hardware.

``runs`` lists, shows, renames and deletes the runs recorded in the runs database
(``charlstm_core.runs``); ``sweep`` trains every combination of a few settings over a process pool
and prints them ranked (``charlstm_core.sweep``; SIGINT, SIGTERM or SIGHUP stop the points in
progress after their step, saved, and the table of what finished is printed, exit 128 + the
signal); ``devices`` lists where training can run (``charlstm_core.engine.devices``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import sweep as sweep_mod
from ..engine.devices import list_devices
from ..errors import RunStoreError
from ..files.text import display_path, inert, load_corpus
from ..runs import Run, RunStore
from ..sweep.calibration import device_timer
from ..training import measures
from .common import EXIT_FAILURE, SWEEP_DEFAULTS
from .console import (
    UsageError,
    bits,
    count,
    exit_status,
    fmt_loss,
    hms,
    note,
    signal_name,
    warn,
    write,
)
from .options import configs_from_args, grid_aliases
from .table import align_columns, sweep_table


def _fmt_time(seconds: float | None) -> str:
    return "-" if seconds is None else hms(seconds)


def runs(args: argparse.Namespace) -> int:
    action = args.action
    with RunStore.open(args.runs_db) as store:
        if action is None:
            runs = store.list_runs()
            for damaged in store.damaged:  # listed without them, each named once
                warn(f"{damaged}; it is left out of this list.")
            if args.json:
                print(json.dumps([r.to_json() for r in runs], indent=1))
            elif not runs:
                note(f"no runs recorded yet in {store.path}")
            else:
                write(sys.stdout, _runs_table(runs) + "\n")
            return 0
        if action == "show":
            return _runs_show(store, args)
        if action == "rename":
            store.rename(args.id, args.name)
            note(f"run {args.id} is now called {inert(repr(args.name.strip()))}")
            return 0
        return _runs_rm(store, args)


def _runs_table(runs: list[Run]) -> str:
    rows = [["id", "name", "text", "model file", "size", "steps", "duration", "best val", "chars/s",
             "started", "status", "host"]]  # fmt: skip
    for r in runs:
        m = r.model
        rows.append(
            [
                str(r.id),
                inert(r.name),
                inert(r.text_name),
                inert(os.path.basename(r.model_path)) if r.model_path else "-",
                f"{m.get('num_layers', '?')}x{m.get('hidden_size', '?')}",
                f"{r.steps:,}",
                _fmt_time(r.duration_s),
                fmt_loss(r.best_val_loss),
                "-" if r.chars_per_sec is None else f"{r.chars_per_sec:,.0f}",
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)),
                r.status,
                inert(r.host) if r.host else "-",
            ]
        )
    return align_columns(rows)


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
        ("run", f"{run.id}: {inert(run.name)}"),
        ("status", run.status + (f" ({inert(run.message)})" if run.message else "")),
        ("text", f"{inert(run.text_name)} ({run.text_size or 0:,} bytes, sha256 "
         f"{run.text_sha256[:16]}...)"),
        ("when", when),
        ("steps", f"{run.steps:,} (from step {run.start_step:,}); {run.chars_seen:,} characters"),
        ("duration", f"{_fmt_time(run.duration_s)} ({measures.DURATION_MEANS})"),
        ("chars/s", ("-" if run.chars_per_sec is None else f"{run.chars_per_sec:,.0f}")
         + f" ({measures.CHARS_PER_SEC_MEANS})"),
        ("best val loss", "-" if best is None else f"{best:.4f} nats/char "
         f"({bits(best):.4f} bits/char)"),
        ("final val loss", fmt_loss(run.final_val_loss)),
        ("model", inert(run.model_path or "-")),
        ("recorded by", f"{inert(run.source)} (pid {run.pid} on {inert(str(run.host))})"
         + (f", sweep {inert(run.sweep)}" if run.sweep else "")),
        ("curves", f"{len(curves.train):,} training points, {len(curves.val):,} validation"),
        ("model settings", inert(" ".join(f"{k}={v}" for k, v in run.model.items()))),
        ("train settings", inert(" ".join(f"{k}={v}" for k, v in run.train.items()))),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        write(sys.stdout, f"{key + ':':<{width}} {value}\n")
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
    ids = [r.id for r in runs]
    for r in runs if args.with_model else ():  # a model another run owns now, or one in use
        problem = store.model_problem(r, along=ids)
        if problem:
            raise RunStoreError(f"{problem} Nothing was deleted.")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete without confirmation; add --yes")
        names = ", ".join(f"{r.id} ({inert(r.name)})" for r in runs)
        extra = " and their model files" if args.with_model else ""
        try:
            answer = input(f"Delete run(s) {names}{extra}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            note("nothing deleted")
            return 0
    for r in runs:
        removed = store.delete(r.id, with_model=args.with_model, along=ids)
        kept = ""
        if r.model_path and not removed and os.path.exists(r.model_path):
            kept = f"; its model {inert(display_path(r.model_path))} is kept"
        gone = f" and its model {inert(display_path(removed))}" if removed else ""
        note(f"deleted run {r.id} ({inert(r.name)}){gone}{kept}")
    return 0


def sweep(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {args.jobs}.")
    if args.as_steps and args.minutes is None:
        given = "--steps" if args.steps is not None else "--epochs"
        raise UsageError(
            f"--as-steps turns --minutes M into each point's steps; with {given} the budget is "
            "already fixed: give --minutes M instead, or drop --as-steps."
        )
    budget = {"steps": args.steps, "epochs": args.epochs, "minutes": args.minutes}
    base_model, base_train = configs_from_args(args, SWEEP_DEFAULTS, **budget)
    axes = sweep_mod.parse_grid(args.grid, grid_aliases())
    points = sweep_mod.grid_points(axes, base_model, base_train)
    corpus = load_corpus(args.text, args.encoding)  # a bad text fails here, not in every point
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.abspath(args.out_dir or f"{Path(args.text).stem}-sweep-{stamp}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"--out-dir {args.out_dir} is a file; give a folder.")
    store = RunStore.open(args.runs_db)  # fails here, clearly, rather than in every point
    db = store.path
    store.close()
    spec = sweep_mod.SweepSpec(
        text_path=os.path.abspath(args.text),
        encoding=args.encoding,
        base_model=base_model,
        base_train=base_train,
        out_dir=out_dir,
        runs_db=db,
        sweep_label=sweep_mod.sweep_label(args.text),
        device=args.device,
    )
    earlier = sweep_mod.earlier_point_files(spec, points)
    if earlier:
        names = ", ".join(inert(display_path(os.path.basename(p))) for p in earlier[:3])
        more = f" and {len(earlier) - 3} more" if len(earlier) > 3 else ""
        raise UsageError(
            f"--out-dir {inert(display_path(out_dir))} already holds {names}{more} from an "
            "earlier sweep; this one would replace them (and the earlier runs would name the "
            "new files). Give another --out-dir, or move those files away."
        )
    if args.scheduler:  # a Dask cluster trains the points (charlstm_core.cli.sweep_cluster)
        from .sweep_cluster import cluster_sweep

        return cluster_sweep(args, spec, axes, points, corpus)
    jobs = min(args.jobs, len(points))
    cores = sweep_mod.usable_cores()
    if jobs > cores:
        fewer = " (with --minutes, fewer steps)" if args.minutes and not args.as_steps else ""
        warn(
            f"--jobs {jobs} on {cores} core(s): the points share cores, so each trains "
            f"slower{fewer}."
        )
    if args.as_steps:
        points = _calibrated(args, points, base_model, base_train, corpus)
    if not args.quiet:
        threads = sweep_mod.split_cores(jobs)
        note(
            f"sweep of {len(points)} point(s) on {Path(args.text).name}, {jobs} at a time "
            f"({threads} BLAS thread(s) each); models in {out_dir}; runs recorded in {db} "
            f"as sweep '{spec.sweep_label}'"
        )
    results: list[sweep_mod.PointResult] = []
    signum: int | None = None

    def started(point: sweep_mod.SweepPoint) -> None:
        if not args.quiet:
            _say(f"[{point.index + 1}/{len(points)}] {point.label}: training")

    try:
        for result in sweep_mod.run_sweep(
            spec, points, jobs=jobs, on_start=started, on_signal=_stopping
        ):
            results.append(result)
            if not args.quiet:
                val = (
                    ""
                    if result.best_val_loss is None
                    else (f", best val {result.best_val_loss:.4f}")
                )
                _say(f"[{result.index + 1}/{len(points)}] {result.label}: {result.status}{val}")
    except KeyboardInterrupt as e:  # SweepInterrupted, or a second signal: quit sooner
        signum = getattr(e, "signum", 2)
    done = {r.index for r in results}
    results += [sweep_mod.skipped_result(p) for p in points
                if p.index not in done]  # fmt: skip
    with contextlib.suppress(OSError):  # after a hang-up the terminal may be gone
        write(sys.stdout, sweep_table(results, axes) + "\n")
        sys.stdout.flush()
    if signum is not None:
        how = "interrupted" if signum == 2 else f"stopped by {signal_name(signum)}"
        _say(f"{how}; the points that finished are kept and recorded")
        return exit_status(signum)
    if any(r.status in ("failed", "diverged") for r in results):
        return EXIT_FAILURE
    return 0


def _say(message: str) -> None:
    """A note on stderr that a terminal gone after a hang-up (SIGHUP) does not turn into an
    error: the sweep goes on stopping and saving."""
    with contextlib.suppress(OSError, ValueError):
        note(message)


def _stopping(signum: int) -> None:
    """What the first stop signal of a sweep prints (in the signal handler)."""
    again = "Ctrl-C" if signum == 2 else signal_name(signum)
    _say(
        f"{signal_name(signum)}: stopping the points in progress after their step and saving "
        f"them ({again} again to quit sooner)"
    )


def _calibrated(args, points, base_model, base_train, corpus) -> list[sweep_mod.SweepPoint]:
    """``--as-steps``: each point timed in turn and given the steps that fit in --minutes."""
    if not args.quiet:
        note(
            f"timing {len(points)} point(s) one at a time to turn {count(args.minutes, 'minute')} "
            "into steps"
        )

    def timed(c: sweep_mod.Calibration) -> None:
        if not args.quiet:
            note(
                f"[{c.point.index + 1}/{len(points)}] {c.point.label}: {c.seconds_per_step:.4f} s "
                f"a step with its validations and samples: {count(c.steps, 'step')}"
            )

    cals = sweep_mod.calibrate(
        points, base_model, base_train, corpus, args.minutes, on_point=timed,
        timer=device_timer(args.device),
    )  # fmt: skip
    return [c.point for c in cals]


def devices(args: argparse.Namespace) -> int:
    """``charlstm devices``: what ``charlstm_core.engine.devices.list_devices`` found, one fact
    a line."""
    for line in list_devices().lines():
        write(sys.stdout, line + "\n")
    return 0
