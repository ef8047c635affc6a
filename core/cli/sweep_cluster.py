"""``charlstm sweep … --scheduler ADDRESS``: the sweep's points trained on a Dask cluster
(``charlstm_core.sweep.cluster``), shown as they run.

On a terminal a block of lines is redrawn in place (at most ``REDRAW_S`` apart): one line per
point training (step, loss, validation loss, chars/s, host) and the ranking of the points that
have ended so far. Elsewhere (a log, a pipe) each point's start and end are printed as lines, with
its progress every ``LOG_EVERY_S``. Ctrl-C, SIGTERM and SIGHUP stop the points training after
their current step (kept as "stopped") and skip the rest; a second one cancels them at once. The
cluster keeps running either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..sweep.grid import Axis, PointResult, SweepPoint, rank
from ..training.stopping import StopSignals
from .common import EXIT_FAILURE
from .console import (
    UsageError,
    count,
    exit_status,
    fmt_loss,
    note,
    signal_name,
    warn,
    write,
)
from .table import sweep_table

REDRAW_S = 0.2  # the live block is redrawn at most this often
LOG_EVERY_S = 10.0  # off a terminal: a training point's progress line at most this often


def cluster_sweep(
    args: argparse.Namespace, spec: Any, axes: list[Axis], points: list[SweepPoint], corpus: Any
) -> int:
    """Run the sweep on the cluster at ``args.scheduler``; the exit status."""
    from ..sweep import cluster  # imports Dask: only here, only with --scheduler

    address = args.scheduler.strip()
    if args.jobs != 1:
        warn("--jobs is for sweeps on this computer; on a cluster every worker thread trains a "
             "point at a time.")  # fmt: skip
    if not cluster.dask_available():
        raise UsageError(cluster.INSTALL_HINT)
    client = cluster.connect(address)
    try:
        workers = cluster.list_workers(client)
        cluster.check_workers(workers, address, spec.device)
        runner = cluster.ClusterSweep(client, spec, points, workers=workers)
        if not args.quiet:
            note(f"Dask cluster at {address}: {cluster.describe_workers(workers)}")
        signals = StopSignals(
            on_stop=lambda signum: runner.stop(),
            on_signal=lambda signum: write(sys.stderr, _stop_message(signum)),
        )
        with signals:
            if args.as_steps:
                runner.points = _calibrated(args, runner, points)
            if signals.signum is None:
                if not args.quiet:
                    note(
                        f"sweep of {len(points)} point(s) on {corpus.name}, one task each; "
                        f"models in {spec.out_dir}; runs recorded in {spec.runs_db} as sweep "
                        f"'{spec.sweep_label}'"
                    )
                results = _follow(args, runner, axes)
            else:
                results = []
    finally:
        client.close()
    done = {r.index for r in results}
    from ..sweep.run import skipped_result

    results += [skipped_result(p) for p in runner.points if p.index not in done]
    write(sys.stdout, sweep_table(results, axes) + "\n")
    if signals.signum is not None:
        note(
            "stopped; the points that ended are kept and recorded, and the cluster goes on running"
        )
        return exit_status(signals.signum)
    if any(r.status in ("failed", "diverged") for r in results):
        return EXIT_FAILURE
    return 0


def _stop_message(signum: int) -> str:
    again = "Ctrl-C" if signum == 2 else signal_name(signum)
    return (
        f"\ncharlstm: {signal_name(signum)}: the points training stop after their current step "
        f"and come back; the others are skipped ({again} again to cancel them at once)\n"
    )


def _calibrated(args: argparse.Namespace, runner: Any, points: list[SweepPoint]) -> list:
    """``--as-steps`` on a worker: the points timed where they will train."""
    if not args.quiet:
        note(
            f"timing {len(points)} point(s) on a worker, one at a time, to turn "
            f"{count(args.minutes, 'minute')} into steps"
        )
    cals, host, threads = runner.calibrate(args.minutes)
    if not cals:
        return points
    if not args.quiet:
        for c in cals:
            note(
                f"[{c.point.index + 1}/{len(points)}] {c.point.label}: {c.seconds_per_step:.4f} s "
                f"a step on {host} ({count(threads, 'BLAS thread')}): {count(c.steps, 'step')}"
            )
    return [c.point for c in cals]


def _follow(args: argparse.Namespace, runner: Any, axes: list[Axis]) -> list[PointResult]:
    show = (
        _Quiet()
        if args.quiet
        else _Live(len(runner.points), axes)
        if sys.stderr.isatty()
        else _Lines(len(runner.points))
    )
    results: list[PointResult] = []
    try:
        for event in runner.run():
            kind = type(event).__name__
            if kind == "PointEnded":
                results.append(event.result)
            show(event, results)
    except KeyboardInterrupt:  # a second stop signal: cancelled at once
        runner.stop_now()
    show.close(results)
    return results


class _Quiet:
    def __call__(self, event: Any, results: list[PointResult]) -> None:
        pass

    def close(self, results: list[PointResult]) -> None:
        pass


def _progress_text(n: int, e: Any) -> str:
    """'[3/8] lr=0.002 hidden=256: step 1,200/3,000 (40%) | loss 1.8342 | val 1.9021 |
    12,345 chars/s | on host-a'"""
    pct = 100.0 * e.step / max(e.total_steps, 1)
    return (
        f"[{e.point.index + 1}/{n}] {e.point.label}: step {e.step:,}/{e.total_steps:,} "
        f"({pct:.0f}%) | loss {e.loss:.4f} | val {fmt_loss(e.val_loss)} | "
        f"{e.chars_per_sec:,.0f} chars/s | on {e.host}"
    )


def _ended_text(n: int, event: Any, results: list[PointResult]) -> str:
    r = event.result
    val = "" if r.best_val_loss is None else f", best val {r.best_val_loss:.4f}"
    place = ""
    if r.ok:
        ranked = [x.index for x in rank(results) if x.ok]
        place = f" (#{ranked.index(r.index) + 1} of {len(ranked)} so far)"
    where = f" on {r.host}" if r.host else ""
    # a retried point's message says how; another's only matters when it did not finish
    why = f": {r.message}" if r.message and (r.status != "finished" or event.retries) else ""
    return f"[{r.index + 1}/{n}] {r.label}: {r.status}{val}{where}{place}{why}"


class _Lines:
    """Off a terminal: a line per start and end; a training point's progress every
    LOG_EVERY_S."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.logged: dict[int, float] = {}

    def __call__(self, event: Any, results: list[PointResult]) -> None:
        kind = type(event).__name__
        if kind == "PointStarted":
            again = (
                f" again (attempt {event.attempt}, from step {event.resumed_from:,})"
                if event.attempt > 1
                else ""
            )
            note(f"[{event.point.index + 1}/{self.n}] {event.point.label}: training on "
                 f"{event.host}{again}")  # fmt: skip
        elif kind == "PointProgress":
            now = time.monotonic()
            last = self.logged.get(event.point.index)
            if last is None or now - last >= LOG_EVERY_S or event.step >= event.total_steps:
                self.logged[event.point.index] = now
                write(sys.stderr, _progress_text(self.n, event) + "\n")
        elif kind == "PointEnded":
            note(_ended_text(self.n, event, results))
        sys.stderr.flush()

    def close(self, results: list[PointResult]) -> None:
        pass


class _Live:
    """On a terminal: the points training and the ranking so far, redrawn in place."""

    def __init__(self, n: int, axes: list[Axis]) -> None:
        self.n, self.axes = n, axes
        self.training: dict[int, str] = {}
        self.lines = 0
        self.drawn_at = 0.0

    def __call__(self, event: Any, results: list[PointResult]) -> None:
        kind = type(event).__name__
        i = event.point.index if kind != "PointEnded" else event.result.index
        if kind == "PointStarted":
            self.training[i] = (
                f"[{i + 1}/{self.n}] {event.point.label}: starting on {event.host}"
                + (f" (attempt {event.attempt}, from step {event.resumed_from:,})"
                   if event.attempt > 1 else "")
            )  # fmt: skip
        elif kind == "PointProgress":
            self.training[i] = _progress_text(self.n, event)
        elif kind == "PointEnded":
            self.training.pop(i, None)
            self._clear()
            note(_ended_text(self.n, event, results))
            self.draw(results, force=True)
            return
        self.draw(results)

    def _clear(self) -> None:
        if self.lines:
            write(sys.stderr, f"\x1b[{self.lines}F\x1b[J")  # up to the block's start, erase
            self.lines = 0

    def draw(self, results: list[PointResult], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.drawn_at < REDRAW_S:
            return
        from shutil import get_terminal_size

        size = get_terminal_size((100, 24))
        block = [self.training[k] for k in sorted(self.training)]
        if results:
            table = sweep_table(results, self.axes).split("\n")
            block += ["ranking so far:", *table]
        block = [line[: size.columns - 1] for line in block][: max(1, size.lines - 2)]
        self._clear()
        write(sys.stderr, "".join(line + "\n" for line in block))
        sys.stderr.flush()
        self.lines = len(block)
        self.drawn_at = now

    def close(self, results: list[PointResult]) -> None:
        self._clear()
        sys.stderr.flush()
