"""The Runs panel and the overlay under load: table loading time and event-loop lateness.

1. Fills a throw-away run store with ``--runs`` finished runs of ``--points`` steps each (curves
   included), then times the window's ``refresh_runs()`` plus the first paint of the table
   (target < 0.5 s for 1,000 runs), and, for information, reading every run's curves.
2. Adds ``--overlay`` runs of ``--long`` steps each, ticks them all in the panel, and while their
   curves load and are drawn, then while the plot is panned and zoomed every 30 ms and its x axis
   and log scale switched every second for ``--seconds``, a 10 ms QTimer measures how late the
   event loop runs (target p99 < 50 ms); then the same pan and zoom with no overlay, to show
   what the plot itself costs on this machine.

Every figure is printed beside its target as a ratio (below 1 meets it). The real figures:
``.venv/bin/python benchmarks/bench_runs_gui.py`` (1,000 runs of 1,000 steps; 10 of 100,000); a
quick check: ``--runs 100 --points 200 --long 20000 --seconds 2``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from charlstm_core.events import EvalEvent, StepEvent, TrainSummary  # noqa: E402
from charlstm_core.runs import RunRecorder, RunStore  # noqa: E402
from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from qt_lateness import TICK_MS, LatenessMeter  # noqa: E402

LOAD_TARGET_S = 0.5
LATE_TARGET_MS = 50.0


def record(db: str, name: str, steps: int, seed: int) -> int:
    """One finished run with a noisy falling curve, written as the app writes one (a recorder)."""
    rng = np.random.default_rng(seed)
    loss = 3.5 * np.exp(-np.arange(1, steps + 1) / (steps / 4)) + 1.2 + rng.normal(0, 0.05, steps)
    rec = RunRecorder(
        db,
        text={"name": "tiny.txt", "sha256": "0" * 64, "size": 1000},
        model_config={"vocab_size": 65, "hidden_size": 128 * (1 + seed % 4), "num_layers": 2},
        train_config={"lr": 0.002 * (1 + seed % 3), "batch_size": 32, "seq_len": 64},
        name=name,
        source="app",
        flush_points=10**9,
        flush_interval_s=1e9,  # one transaction per run, at finish
    )
    for s in range(1, steps + 1):
        rec(StepEvent(s, steps, s / 100, s * 2048, float(loss[s - 1]), 0.002, 1.0, 5e4, s * 0.05))
        if s % 100 == 0:
            rec(EvalEvent(s, float(loss[s - 1]) + 0.1, float(loss[:s].min()) + 0.1, s * 0.05))
    rec.finish(
        summary=TrainSummary(steps, "completed", float(loss.min()) + 0.1, steps * 0.05, None)
    )
    if rec.warning:
        raise SystemExit(rec.warning)
    return int(rec.run_id)


def lateness_while(loop_work, seconds_cap: float) -> np.ndarray:
    """Run ``loop_work(loop)`` inside an event loop while a 10 ms timer records its lateness."""
    meter = LatenessMeter()
    loop = QEventLoop()
    QTimer.singleShot(int(seconds_cap * 1000), loop.quit)  # a safety net
    meter.start()
    QTimer.singleShot(0, lambda: loop_work(loop))
    loop.exec()
    return meter.stop()


def report(what: str, late: np.ndarray) -> None:
    p99 = float(np.percentile(late, 99))
    print(
        f"event-loop lateness {what}, {late.size} ticks of {TICK_MS} ms: "
        f"p50 {np.percentile(late, 50):.1f} ms, p99 {p99:.1f} ms = "
        f"{p99 / LATE_TARGET_MS:.2f} x the target (< {LATE_TARGET_MS:.0f} ms), "
        f"max {late.max():.1f} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000, help="runs in the table (default 1000)")
    p.add_argument("--points", type=int, default=1000, help="steps of each of them")
    p.add_argument("--overlay", type=int, default=10, help="runs overlaid (default 10)")
    p.add_argument("--long", type=int, default=100_000, help="steps of each overlaid run")
    p.add_argument("--seconds", type=float, default=5.0, help="panning and zooming time")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="charlstm-bench-") as tmp:
        os.environ["CHARLSTM_HOME"] = tmp  # the app's store: this throw-away one
        os.environ["XDG_DATA_HOME"] = tmp
        db = str(Path(tmp) / "runs.sqlite")
        t0 = time.perf_counter()
        for i in range(args.runs):
            record(db, f"run {i}", args.points, i)
        print(
            f"filled the store: {args.runs:,} runs of {args.points:,} steps "
            f"({time.perf_counter() - t0:.1f} s)"
        )

        from charlstm_gui.app import create_app

        _app = create_app(["bench"])
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp)
        from charlstm_gui.window import MainWindow

        w = MainWindow()
        w.resize(1280, 820)
        w.show()
        w.tabs.setCurrentWidget(w.runs_panel)
        QApplication.processEvents()

        t0 = time.perf_counter()
        w.refresh_runs()
        w.runs_panel.table.viewport().repaint()
        QApplication.processEvents()
        load_s = time.perf_counter() - t0
        shown = w.runs_panel.proxy.rowCount()
        print(
            f"Runs panel with {shown:,} runs: {load_s * 1000:.0f} ms = "
            f"{load_s / LOAD_TARGET_S:.2f} x the target (< {LOAD_TARGET_S * 1000:.0f} ms)"
        )
        t0 = time.perf_counter()
        w.ctl.runs.list_runs()
        read_ms = (time.perf_counter() - t0) * 1000
        print(f"  (of which reading the runs from the store: {read_ms:.0f} ms)")
        with RunStore.open(db) as store:
            t0 = time.perf_counter()
            curves = store.curves()
            n_points = sum(len(c.train) + len(c.val) for c in curves.values())
            print(
                f"  (for information: reading all {len(curves):,} runs' curves, {n_points:,} "
                f"points: {(time.perf_counter() - t0) * 1000:.0f} ms)"
            )

        t0 = time.perf_counter()
        ids = [record(db, f"long {i}", args.long, 10_000 + i) for i in range(args.overlay)]
        print(
            f"added {args.overlay} runs of {args.long:,} steps ({time.perf_counter() - t0:.1f} s)"
        )
        w.refresh_runs()
        QApplication.processEvents()
        vb = w.plot.plot.vb
        axes = ["chars", "time", "step"]
        state = {"i": 0}

        def interact() -> None:
            state["i"] += 1
            i = state["i"]
            if i % 33 == 0:  # about once a second
                w.plot.set_x_axis(axes[(i // 33) % 3])
                w.plot.set_log_scale(not w.plot.log_box.isChecked())
            elif i % 2:
                vb.scaleBy((0.9, 0.95))
            else:
                vb.translateBy(x=vb.viewRange()[0][1] * 0.01)

        def work(loop: QEventLoop) -> None:
            w.runs_panel.model.set_checked(ids)  # loads the curves off the GUI thread

            def drawn() -> None:
                if len(w.plot.overlay_keys) < len(ids):
                    QTimer.singleShot(5, drawn)
                    return
                ready[0] = time.perf_counter()
                pan = QTimer(w)
                pan.setInterval(30)
                pan.timeout.connect(interact)
                pan.start()
                QTimer.singleShot(int(args.seconds * 1000), loop.quit)

            drawn()

        ready = [0.0]
        t0 = time.perf_counter()
        late = lateness_while(work, args.seconds + 120)
        if not ready[0]:
            raise SystemExit("the overlay was not drawn within the time allowed")
        print(
            f"overlay of {args.overlay} runs x {args.long:,} steps drawn "
            f"{(ready[0] - t0) * 1000:.0f} ms after ticking them"
        )
        report("with the overlay (ticking, loading, then pan/zoom/axis switches)", late)
        w.runs_panel.model.set_checked([])
        QApplication.processEvents()

        def baseline(loop: QEventLoop) -> None:
            state["i"] = 0
            pan = QTimer(w)
            pan.setInterval(30)
            pan.timeout.connect(interact)
            pan.start()
            QTimer.singleShot(int(args.seconds * 1000), loop.quit)

        report("for comparison, the same pan/zoom with no overlay", lateness_while(baseline, 60))
        w.ctl.shutdown()
        w.close()


if __name__ == "__main__":
    main()
