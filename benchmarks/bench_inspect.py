"""Figures of issue 11 against their targets: passage analysis, unit ranking, memorisation index.

    python benchmarks/bench_inspect.py            # full: L=2, H=512, 2,000 characters; 100 MB index
    python benchmarks/bench_inspect.py --mb 10    # a shorter index run (the 10 s target scaled)

Each line prints the figure, its target and figure / target (≤ 1 meets it). The text is made
here: English-like words from a fixed seed with quotes, brackets and indented lines, so that
common grams recur as in real prose. Peak memory of the build is the tracemalloc peak (NumPy
reports its buffers to it).

The issue's figure is the analysis *while training runs in the app*. The app trains on a worker
thread of its own process, BLAS set to the cores (at most 2, ``thread_policy('app')``) and the batch
run in slices on that many threads (charlstm_core.engine.parallel); an analysis beside it runs on
another
thread with BLAS held to one thread (charlstm_gui/views/inspect_analysis.py). This script does the
same
without Qt: a ``Trainer`` (L=2, H=512, B=32, T=100 by default) runs on a thread, and once it has
made ``--warm-steps`` steps, the passage of the model it trains is analysed ``--repeats`` times
on the main thread in ``single_threaded_blas``, as ``analyse_passage`` does; the median is the
figure. The same passage is also read with nothing else running (every BLAS thread, then one).
The training thread lowers its priority as the app's training worker does
(``charlstm_core.engine.parallel.lower_priority``, by ``TRAINING_NICE``; its slices' threads
inherit it);
``--trainer-nice 0`` shows the analysis without that policy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import tracemalloc

import numpy as np
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.engine.model import init_params
from charlstm_core.engine.parallel import (
    TRAINING_NICE,
    blas_thread_count,
    blas_threads,
    lower_priority,
    single_threaded_blas,
)
from charlstm_core.events import StepEvent
from charlstm_core.files.modelfile import ModelFile
from charlstm_core.files.text import Vocab, corpus_from_text
from charlstm_core.insight.copies import CopyIndex
from charlstm_core.insight.inspect import analyse, detectors, rank_units
from charlstm_core.training.trainer import Trainer

WORDS = (
    "the of and to a in that is was he for it with as his on be at by had not are but from or "
    "have an they which one you were her all she there would their we him been has when who "
    "will more no if out so said what up its about into than them can only other new some "
    "could time these two may then do first any my now such like our over man me even most"
).split()


def make_text(n_chars: int, seed: int = 0) -> str:
    """About ``n_chars`` characters of word salad with line structure, quotes and brackets
    (Zipf-distributed words, 12 a line; vectorised so that 100 MB takes seconds, not minutes)."""
    rng = np.random.default_rng(seed)
    n_lines = n_chars // 35 + 1  # lines average ~50 characters: overshoot, then cut
    vocab = np.array(WORDS, dtype=object)
    words = vocab[rng.zipf(1.3, (n_lines, 12)) % len(WORDS)]
    kind = rng.random(n_lines)
    indent = rng.integers(0, 3, n_lines)
    parts: list[str] = []
    for row, r, ind in zip(words.tolist(), kind.tolist(), indent.tolist(), strict=True):
        line = " ".join(row)
        if r < 0.2:
            line = f'"{line}"'
        elif r < 0.3:
            line = f"({line})"
        parts.append("    " * ind + line.capitalize() + ".\n")
    return "".join(parts)[:n_chars]


def report(name: str, value: float, target: float, unit: str) -> None:
    ratio = value / target
    print(f"{name:<60} {value:8.3f} {unit:<3} target {target:8.3f} {unit:<3} ratio {ratio:6.2f}")


def timed(fn) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - t0, time.thread_time() - c0


def medians(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeats`` calls of ``fn``."""
    runs = [timed(fn) for _ in range(repeats)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


class Training:
    """A ``Trainer`` running on a thread of this process as the app's training session runs one:
    BLAS set to the cores (at most 2), the batch in slices (charlstm_core.engine.parallel); no
    evaluation, samples or checkpoints, so that every second of it is training steps."""

    def __init__(self, text: str, vocab: Vocab, args: argparse.Namespace) -> None:
        corpus = corpus_from_text(text, vocab=vocab)
        mc = ModelConfig(vocab.size, args.hidden, args.layers)
        tc = TrainConfig(batch_size=args.batch_size, seq_len=args.seq_len, steps=10**9,
                         eval_every=0, sample_every=0, checkpoint_every=0,
                         val_fraction=0.0)  # fmt: skip
        self.trainer = Trainer(corpus, mc, tc)
        self.threads = min(
            2, os.cpu_count() or 1
        )  # charlstm_core.training.threads.thread_policy("app")
        self.nice = args.trainer_nice
        self.stamps: list[float] = []  # perf_counter at each step event
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="training", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lower_priority(self.nice)  # as charlstm_core.training.session.Session.run
        try:
            with blas_thread_count(self.threads):
                for event in self.trainer.run():
                    if isinstance(event, StepEvent):
                        with self._cond:
                            self.stamps.append(time.perf_counter())
                            self._cond.notify_all()
        except BaseException as exc:  # shown by wait(): a benchmark must not hang on it
            self.error = exc
        with self._cond:
            self._cond.notify_all()

    def wait(self, steps: int) -> None:
        """Until the trainer has made ``steps`` steps (raises what stopped it before)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.stamps) >= steps or not self._thread.is_alive())
        if self.error is not None or len(self.stamps) < steps:
            raise RuntimeError(f"the training stopped: {self.error!r}")

    def steps_between(self, t0: float, t1: float) -> int:
        """Steps that ended between the two ``perf_counter`` readings."""
        with self._cond:
            return sum(t0 <= s <= t1 for s in self.stamps)

    def stop(self) -> None:
        self.trainer.request_stop()
        self._thread.join()


def analysis_figures(args: argparse.Namespace) -> None:
    text = make_text(args.chars, seed=1)
    train_text = make_text(args.train_chars, seed=2) + text
    vocab = Vocab.from_text(train_text)
    cfg = ModelConfig(vocab.size, args.hidden, args.layers, dropout=0.0)
    model = ModelFile(cfg, init_params(cfg, np.random.default_rng(0)), vocab)
    what = f"analyse {args.chars:,} chars L={args.layers} H={args.hidden}"
    analyse(model, text[:50])  # warm-up: first-call allocations, BLAS threads

    # alone (the command line, an opened model in the app): every BLAS thread
    wall, cpu = medians(lambda: analyse(model, text), args.repeats)
    report(f"{what}, alone ({blas_threads()} BLAS thr.)", wall, 1.0, "s")
    print(f"  (CPU time of the calling thread {cpu:.3f} s; median of {args.repeats})")
    with single_threaded_blas():
        wall, cpu = medians(lambda: analyse(model, text), args.repeats)
    report(f"{what}, alone on 1 BLAS thread", wall, 1.0, "s")
    print(f"  (CPU time {cpu:.3f} s)")
    a = analyse(model, text)

    def ranking() -> None:  # as the app ranks: the detectors, then units by c and by h
        signals = detectors(text)
        for kind in "ch":
            rank_units(a, signals, kind, top=3)

    wall, cpu = medians(ranking, args.repeats)
    report("  detectors' ranking (c and h), alone", wall, 1.0, "s")

    # beside a running training, as the app does it
    training = Training(train_text, vocab, args)
    try:
        training.wait(args.warm_steps + 1)  # the first step (allocation, cold caches) + warm
        busy = training.trainer.snapshot()  # the model being trained, as the app reads it
        walls, cpus, ranks = [], [], []
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            with single_threaded_blas():  # as charlstm_gui.views.inspect_analysis.analyse_passage
                t_a, c_a = time.perf_counter(), time.thread_time()
                read = analyse(busy, text)
                t_b, c_b = time.perf_counter(), time.thread_time()
                sig = detectors(text)
                for kind in "ch":
                    rank_units(read, sig, kind, top=3)
                t_c = time.perf_counter()
            walls.append(t_b - t_a)
            cpus.append(c_b - c_a)
            ranks.append(t_c - t_b)
        t1 = time.perf_counter()
        before = [s for s in training.stamps if s <= t0][1:]  # after the first step
        rate_before = (len(before) - 1) / (before[-1] - before[0])
        during = training.steps_between(t0, t1)
    finally:
        training.stop()
    label = f"{what}, beside training, 1 BLAS thr."
    if args.trainer_nice != TRAINING_NICE:
        label = f"{what}, beside training at nice {args.trainer_nice}"
    report(label, statistics.median(walls), 1.0, "s")
    print(
        f"  (median of {len(walls)}: {', '.join(f'{w:.3f}' for w in walls)} s; CPU time "
        f"{statistics.median(cpus):.3f} s; training L={args.layers} H={args.hidden} "
        f"B={args.batch_size} T={args.seq_len} on {training.threads} BLAS thr.: "
        f"{rate_before:.2f} steps/s before, {during / (t1 - t0):.2f} during)"
    )
    report("  detectors' ranking (c and h), beside training", statistics.median(ranks), 1.0, "s")


def index_figures(args: argparse.Namespace) -> None:
    n_bytes = int(args.mb * 1e6)
    train = make_text(n_bytes, seed=3)
    tv = Vocab.from_text(train)
    ids = tv.encode(train)
    del train
    tracemalloc.start()
    t0 = time.perf_counter()
    index = CopyIndex.build(ids, tv)  # the shortest copy the app and the CLI default to
    t1 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    scale = args.mb / 100.0
    report(f"index build, {args.mb:g} MB", t1 - t0, 10.0 * scale, "s")
    label = f"index build peak memory (+ {ids.nbytes / 1e6:.0f} MB ids)"
    report(label, peak / 1e9, 1.0 * scale, "GB")

    rng = np.random.default_rng(4)
    generated = make_text(10_000, seed=5)
    # plant a few real copies, as a model that memorises would write them
    pieces = []
    for start in rng.integers(0, len(ids) - 200, 5):
        pieces.append(tv.decode(ids[start : start + int(rng.integers(20, 200))]))
    generated = (generated[:5000] + "".join(pieces) + generated[5000:])[:10_000]
    index.find(generated[:100])
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        copies = index.find(generated)
        times.append(time.perf_counter() - t0)
    report("check 10,000 generated chars", statistics.median(times), 0.2, "s")
    print(
        f"  (median of {len(times)}: {', '.join(f'{t:.3f}' for t in times)} s; "
        f"{copies.summary()}, {len(copies.spans)} spans)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="training text size for the index")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--chars", type=int, default=2000, help="passage length")
    ap.add_argument("--batch-size", type=int, default=32, help="of the training beside")
    ap.add_argument("--seq-len", type=int, default=100, help="of the training beside")
    ap.add_argument("--train-chars", type=int, default=1_000_000, help="its training text")
    ap.add_argument("--warm-steps", type=int, default=2, help="training steps before timing")
    ap.add_argument("--repeats", type=int, default=3, help="analyses per figure (median)")
    ap.add_argument(
        "--trainer-nice",
        type=int,
        default=TRAINING_NICE,
        help=f"the training thread's nice value (default: the app's, {TRAINING_NICE})",
    )
    ap.add_argument("--only", choices=("analysis", "index"), help="one half of the figures")
    args = ap.parse_args()
    if args.only != "index":
        analysis_figures(args)
    if args.only != "analysis":
        index_figures(args)


if __name__ == "__main__":
    main()
