"""GUI responsiveness while training: event-loop latency and in-app vs headless throughput.

Trains (L=2, H=512, B=32, T=100) on the built-in text for a fixed number of steps, headless (the
plain ``Trainer.run()`` loop, as the CLI does), then inside the app's window (offscreen) while a
10 ms QTimer measures how late the GUI event loop runs, then headless again (the app is compared
with the mean of both: this VM's speed drifts). Prints p50/p99/max lateness (target
p99 < 50 ms) and in-app chars/s as a fraction of headless (target >= 0.9). Run:
``.venv/bin/python benchmarks/bench_gui_latency.py [--steps 30]``.

``--inspect-every K`` keeps the Inspect tab open and refreshes it every K steps as an evaluation
does (a snapshot of the weights taken between two steps, the 2,000-character passage read off the
GUI thread, the text recoloured); the run has no validation text, so the refreshes are asked for
by step count, and the evaluations' own cost stays out of both figures. Without it the tab's
*Live* box is off, so the figures compare with the history of this benchmark.
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
from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.events import StepEvent  # noqa: E402
from charlstm_core.files.builtin_text import builtin_corpus  # noqa: E402
from charlstm_core.training.trainer import Trainer  # noqa: E402
from PySide6.QtCore import (  # noqa: E402
    QCoreApplication,
    QEventLoop,
    QSettings,
)
from qt_lateness import TICK_MS, LatenessMeter  # noqa: E402

from charlstm_gui.app import create_app  # noqa: E402

SETTINGS = dict(hidden_size=512, num_layers=2, seq_len=100, batch_size=32, dropout=0.1)


def rate(steps: list[StepEvent], skip: int) -> float:
    """chars/s between step ``skip`` and the last one, from the trainer's own clock."""
    a, b = steps[skip], steps[-1]
    return (b.chars_seen - a.chars_seen) / (b.elapsed_s - a.elapsed_s)


def headless(corpus, mc: ModelConfig, tc: TrainConfig) -> float:
    steps = [e for e in Trainer(corpus, mc, tc).run() if isinstance(e, StepEvent)]
    return rate(steps, 1)


def in_app(
    corpus, tc: TrainConfig, n_steps: int, settings_dir: str, inspect_every: int = 0
) -> tuple[float, np.ndarray, str, int]:
    _app = create_app(["bench"])  # keep the QApplication alive for the window
    # the window saves its settings when it closes: into a throw-away folder, never the user's
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
    from charlstm_gui.window import MainWindow

    w = MainWindow()
    w.show()
    w.ctl.corpus = corpus
    w.ctl.corpus_changed.emit(corpus)
    w.form.set_values(
        {
            **SETTINGS,
            "duration_unit": "steps",
            "duration": n_steps,
            "eval_every": 0,
            "sample_every": 0,
            "checkpoint_every": 0,
            "autosave_dir": "",
            "seed": tc.seed,
            "val_fraction": 0.0,
        }
    )
    # the reference lines and the copy index of this text and split are built before the clock
    # starts, as they are when a user opens a text and then trains: once per text
    w.meters.rebuild()
    deadline = time.perf_counter() + 300
    while (w.meters.finder is None or not w.plot.references) and time.perf_counter() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    steps: list[StepEvent] = []
    w.ctl.train_events.connect(
        lambda batch: steps.extend(e for e in batch if isinstance(e, StepEvent))
    )
    analysed = [0]
    w.inspect.live.setChecked(bool(inspect_every))  # without the flag: as before the Inspect tab
    if inspect_every:
        w.tabs.setCurrentWidget(w.inspect)
        w.inspect.analysed.connect(lambda: analysed.__setitem__(0, analysed[0] + 1))
        asked = [0]

        def refresh(batch: tuple) -> None:  # as an evaluation every inspect_every steps would
            last = max((e.step for e in batch if isinstance(e, StepEvent)), default=0)
            if last // inspect_every > asked[0]:
                asked[0] = last // inspect_every
                w.ctl.request_inspect_snapshot()

        w.ctl.train_events.connect(refresh)
    blas: list[str] = []
    w.ctl.blas_info.connect(blas.append)
    meter = LatenessMeter()
    loop = QEventLoop()  # the app's own event loop, as app.exec() runs it
    w.ctl.state_changed.connect(lambda _state: None if w.ctl.training else loop.quit())
    w.train_new()
    meter.start()
    if w.ctl.training:
        loop.exec()
    late = meter.stop()
    w.ctl.shutdown()
    w.ask_unsaved = lambda context: "discard"  # a benchmark's model is not worth a question
    w.close()
    blas_text = blas[0] if blas else "BLAS threads: not decided"
    return rate(steps, 1), late, blas_text, analysed[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument(
        "--inspect-every",
        type=int,
        default=0,
        metavar="K",
        help="keep the Inspect tab open and refresh it every K steps (0: closed)",
    )
    args = p.parse_args()
    corpus = builtin_corpus()
    tc = TrainConfig(
        seq_len=100,
        batch_size=32,
        steps=args.steps,
        eval_every=0,
        sample_every=0,
        checkpoint_every=0,
        val_fraction=0.0,  # no final evaluation (minutes at this size): training only
    )
    mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=512, num_layers=2, dropout=0.1)
    print(
        f"text: {corpus.name}, {corpus.n_chars:,} chars; L=2 H=512 B=32 T=100; "
        f"{args.steps} steps each; {os.cpu_count()} CPUs"
    )
    t0 = time.perf_counter()
    before = headless(corpus, mc, tc)
    print(f"headless Trainer.run(): {before:,.0f} chars/s ({time.perf_counter() - t0:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="charlstm-bench-") as tmp:
        os.environ["XDG_DATA_HOME"] = tmp  # nor the user's recent files
        app_rate, late, blas, analysed = in_app(corpus, tc, args.steps, tmp, args.inspect_every)
    # this VM's speed drifts by several per cent over minutes: headless again after the app, and
    # the app against the mean of both
    after = headless(corpus, mc, tc)
    base = (before + after) / 2
    print(f"headless again:         {after:,.0f} chars/s (mean of both {base:,.0f})")
    print(
        f"in the app:             {app_rate:,.0f} chars/s = {app_rate / base:.2f} x headless "
        "(target >= 0.9)"
    )
    print(f"  {blas}")
    if args.inspect_every:
        print(
            f"  with the Inspect tab open: {analysed} passage analyses shown, one asked for "
            f"every {args.inspect_every} steps"
        )
    print(
        f"event-loop lateness over {late.size} ticks of {TICK_MS} ms: "
        f"p50 {np.percentile(late, 50):.1f} ms, p99 {np.percentile(late, 99):.1f} ms, "
        f"max {late.max():.1f} ms (target p99 < 50 ms)"
    )


if __name__ == "__main__":
    main()
